// Package sandboxcheck asks a WeTix environment (the sandbox, normally) the
// questions its docs leave open and that the plugin had to answer by
// assumption: the shape of both grants' answers, what a wrong client secret
// and a dead refresh token get, whether a refresh token is single-use,
// whether a refresh or a client-credentials grant kills earlier tokens, and
// which canonical JSON rule the signature check applies. cmd/wetix-check
// runs it and prints the Markdown report; docs/sandbox-check.md says how to
// read each line.
//
// Every string that reaches the report passes through one redactor that
// knows the client secret, its Basic header and every token seen, and blanks
// anything shaped like a JWT besides: the report is meant to be pasted into
// an issue.
package sandboxcheck
