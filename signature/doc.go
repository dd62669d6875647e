// Package signature builds the signature argument of WeTix's signed GraphQL
// mutations (createMovieOrder, confirmMovieOrder), following WeTix's
// "Signature Algorithm" page. It holds no key and imports nothing from Vault:
// the caller passes a crypto.Signer.
//
// The steps, and what this package decided where the page is ambiguous:
//
//  1. Canonical JSON of the input argument: object keys sorted by byte
//     order (equal to code-point order; GraphQL field names are ASCII, so
//     this is "alphabetical" as the page means it, with upper case before
//     lower case), recursively, including objects inside arrays; arrays keep
//     their order; every field is kept, nulls included; minified (no
//     whitespace at all).
//     Strings are written the way JavaScript's JSON.stringify writes them:
//     only '"', '\\' and control characters are escaped (\b \f \n \r \t, else
//     \u00xx); no HTML escapes (<, >, & stay as they are), and every other
//     character, U+2028 and U+2029 included, stays raw UTF-8. JSON.stringify
//     is the reference because the page's own step-2 example is exactly
//     JSON.stringify(input, null, 2).
//     Numbers keep the exact text they were given (1, 1.50,
//     12345678901234567890 and 1e3 stay as written): the app sends the same
//     text to WeTix, and a float round trip would change it.
//     Refused: input that is not one JSON object, invalid UTF-8, a key given
//     twice in one object (which of the two would WeTix read?), an escaped
//     lone UTF-16 surrogate (it has no UTF-8 form, so the text signed could
//     not be the text sent), nesting deeper than MaxDepth.
//  2. Base64 of the canonical JSON: standard alphabet with padding
//     (RFC 4648 section 4), as in the page's examples ('+', '/', '=').
//     The page's step-2 example does not encode the minified JSON shown above
//     it (it encodes a pretty-printed, different input); the page says twice
//     that the input must be minified, so the example is taken as stale.
//  3. Plaintext: clientId=<id>&data=<base64>&mutation=<name>&shaType=SHA256&timestamp=<unix>
//     in that fixed order, values written raw (not URL-encoded). The page's
//     example shows "&amp;" (HTML-escaping by the docs site) and lacks the
//     '&' before shaType (a typo: every other parameter is separated by one);
//     this package uses a plain '&' everywhere.
//  4. RSA PKCS#1 v1.5 signature over SHA-256 of the plaintext, base64
//     (standard, padded).
//
// Golden vectors in testdata/ pin all of this; `go test ./signature -update`
// rewrites them, and the diff shows any change.
package signature
