// Package client speaks the WeTix OAuth protocol over HTTP: the
// client-credentials grant (/auth/token) and the refresh grant (/auth/refresh).
//
// It knows nothing about Vault. Every failure is returned as an *Error whose
// Kind tells the caller what it may do next (retry, fall back to the
// client-credentials grant, or give up and ask the operator), and whose Sent
// field tells whether the request may have reached WeTix, which matters because
// a refresh token may be single-use.
//
// No error, log line or string produced here contains the client secret, a
// refresh token or an access token.
package client
