// Package signature builds the signature argument of WeTix's signed GraphQL
// mutations (createMovieOrder, confirmMovieOrder), following WeTix's
// "Signature Algorithm" page. It holds no key and imports nothing from Vault:
// the caller passes a crypto.Signer.
//
// The steps, and what this package decided where the page is ambiguous:
//
//  1. Canonical JSON of the input argument. The page says only: keys in
//     alphabetical order, recursively; every field kept, nulls included;
//     minified. It is silent on escaping and on numbers, where encoders
//     differ, so the package offers two rules (Rule):
//
//     RuleGo, the default, is what WeTix's server most probably rebuilds:
//     Go's encoding/json re-encoding of the parsed input. The server is Go
//     (the docs' ticket keys are gobs, the object keys si3nloong/sqlike key
//     protobufs), and the same team's client for a payment gateway with the
//     same signing scheme (wetix/rm-go-client v3/rm.go) canonicalizes with
//     json.Marshal -> mxj.NewMapJson (numbers become float64) -> m.Json(true)
//     (clbanning/mxj json.go: "safe encoding of '<', '>' and '&' is
//     preserved") -> json.Compact, as do the gateway's own SDKs
//     (RevenueMonster rm-go-sdk signature.go, rm-js-sdk src/signature.ts,
//     rm-php-sdk JSON_HEX_AMP|JSON_HEX_TAG) and docs (RevenueMonster/doc-v2
//     docs/quickstart/signature-algorithm.md). So: keys sorted by byte
//     order; '<' '>' '&' U+2028 U+2029 written \u003c \u003e \u0026
//     \u2028 \u2029; '/' and other non-ASCII raw UTF-8; other escapes as
//     encoding/json writes them; numbers printed from float64 (1.50 -> 1.5,
//     1e2 -> 100, 12345678901234567890 -> 12345678901234567000, with a
//     warning for an integer that float64 changes).
//
//     RuleLiteral, the v0.1 rule, is the escape hatch for an integrator
//     whose sandbox says otherwise: strings as JavaScript's JSON.stringify
//     writes them (only '"', '\\' and control characters escaped; < > &
//     U+2028 U+2029 raw) and each number's exact text kept, so an input
//     Vault already decoded may hold no number.
//
//     Both refuse: input that is not one JSON object, invalid UTF-8, a key
//     given twice in one object (Go would keep the last one silently; the
//     app's intent is unknown), an escaped lone UTF-16 surrogate (Go would
//     sign U+FFFD), nesting deeper than MaxDepth; the Go rule also a number
//     beyond float64's range, which Go's decoder refuses too.
//
//  2. Base64 of the canonical JSON: standard alphabet with padding
//     (RFC 4648 section 4), as in the page's examples ('+', '/', '=').
//     The page's step-2 example does not encode the minified JSON shown above
//     it (it encodes a pretty-printed, different input); the page says twice
//     that the input must be minified, so the example is taken as stale.
//
//  3. Plaintext: clientId=<id>&data=<base64>&mutation=<name>&shaType=SHA256&timestamp=<unix>
//     in that fixed order, values written raw (not URL-encoded). The page's
//     example shows "&amp;" (HTML-escaping by the docs site) and lacks the
//     '&' before shaType (a typo: every other parameter is separated by one);
//     this package uses a plain '&' everywhere.
//
//  4. RSA PKCS#1 v1.5 signature over SHA-256 of the plaintext, base64
//     (standard, padded).
//
// Golden vectors in testdata/ pin all of this; `go test ./signature -update`
// rewrites them, and the diff shows any change.
package signature
