// Package wetixtest is a WeTix OAuth server emulator for tests, in the style
// of net/http/httptest: New starts a real HTTP server on loopback, and the
// returned Server exposes counters, fault injection and token inspection.
// Unit tests, acceptance tests (a Vault plugin process calling it over
// loopback) and benchmarks all use it; cmd/wetix-emulator runs it on a port.
//
// # Protocol
//
// It follows the provider's "Client Credentials" and "Refresh Token" pages:
//
//	POST /auth/token    {"grant_type":"client_credentials"}
//	POST /auth/refresh  {"grant_type":"refresh_token","refresh_token":"..."}
//
// Both require Authorization: Basic base64(client_id:client_secret) and
// Content-Type: application/json, and answer 200 with
//
//	{"access_token","expires_in","refresh_token","refresh_token_expires_in","token_type":"Bearer"}
//
// The tokens are HS256 JWTs with the header {"alg":"HS256"} and the claims of
// the docs' examples (aud, client_key, exp, iat, iss, nbf, tokenType) plus a
// unique jti. The signing key is random per Server and never exposed: like a
// real client, a test can only ask the Server whether a token is good.
// Times are whole seconds: exp = iat + expires_in, so a token issued at
// 10:00:00.9 with a 2s TTL expires at 10:00:02. Clients must keep a margin.
//
// WeTix does not document its errors; the emulator answers
//
//	401 {"error":"invalid_client"}          missing or wrong Basic credentials
//	405                                     not POST
//	400 {"error":"invalid_request"}         not JSON, missing fields
//	400 {"error":"unsupported_grant_type"}  grant_type does not match the endpoint
//	400 {"error":"invalid_grant"}           refresh token unknown, expired, spent, revoked
//	404                                     any other path
//
// each with a fixed error_description that never echoes what was sent.
// Refresh tokens are single use unless Options.AllowRefreshReuse: the first
// successful refresh spends the presented token, even if its answer is then
// lost (see Fault.Process), which is the worst case the docs leave open.
//
// Options.TLS serves https instead (the acceptance tests give it a
// certificate from a CA made for the test, to exercise SSL_CERT_FILE and
// HTTPS_PROXY at plugin registration), and RequestInfo.UserAgent tells the
// OnRequest hook who called.
//
// # Admin API
//
// The same server answers under /_emulator/, so an emulator in another
// process (make dev, shell scripts) can be driven over HTTP. Faults do not
// apply to it, and it is not counted.
//
//	GET    /_emulator/stats                  200 {"client_credentials":{"calls":N,"successes":N},"refresh_token":{...}}
//	POST   /_emulator/faults                 install a fault (body below); 204
//	DELETE /_emulator/faults                 ClearFaults; 204
//	POST   /_emulator/reset-counts           ResetCounts; 204
//	POST   /_emulator/seed-refresh-token     200 {"refresh_token":"..."}
//	POST   /_emulator/revoke-refresh-tokens  RevokeAllRefreshTokens; 204
//
// A fault is Fault in snake_case, with delay as a Go duration string; unknown
// fields are rejected (400) so a typo cannot install a no-op:
//
//	{"grant":"refresh_token","times":1,"status":503,"body":"...","content_type":"text/html",
//	 "header":{"Retry-After":["5"]},"delay":"2s","drop":false,"truncate":false,
//	 "omit_refresh_token":false,"omit_expires_in":false,"process":true}
//
// For example:
//
//	curl -X POST localhost:8089/_emulator/faults -d '{"grant":"refresh_token","times":1,"drop":true,"process":true}'
//
// # Signed mutations (graphql.go)
//
// POST /graphql takes one createMovieOrder or confirmMovieOrder mutation
// with its arguments as variables, as SendMutation sends it:
//
//	{"query":"mutation($input: ..., $signature: SignatureInput!) { createMovieOrder(input: $input, signature: $signature) { id referenceId } }",
//	 "variables":{"input":{...},"signature":{"algorithm":"SHA256","timestamp":1634638112,"hash":"..."}}}
//
// It needs Authorization: Bearer <access token> (401 UNAUTHENTICATED), and
// verifies the signature as the "Signature Algorithm" page describes, with
// the client ID the token was issued to and the public key registered
// through the admin API. It rebuilds the signed JSON from the input it
// received the way WeTix's Go server most probably does (verify.go: parse,
// re-encode with encoding/json), and never with the plugin's own
// canonicalizer (package signature), so a test can catch the plugin signing
// bytes WeTix would not rebuild. The literal rule plays a WeTix that
// verifies the app's own characters and number text instead.
//
//	PUT    /_emulator/signing-public-key  {"public_key":"<PEM>"}   204 (replaces: one key per client, as at WeTix)
//	GET    /_emulator/signing-public-key                          200 {"public_key"} or 404
//	DELETE /_emulator/signing-public-key                          204
//	PUT    /_emulator/canonical-rule      {"rule":"go"|"literal"} 204
//
// Refusals are GraphQL errors with extensions.code: INVALID_SIGNATURE,
// STALE_TIMESTAMP (more than DefaultSignatureWindow from the clock),
// NO_PUBLIC_KEY, BAD_REQUEST. Inline (non-variable) arguments are not parsed.
package wetixtest
