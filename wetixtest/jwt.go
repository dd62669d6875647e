package wetixtest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

const (
	tokenTypeAccess  = "ACCESS_TOKEN"
	tokenTypeRefresh = "REFRESH_TOKEN"

	// jwtHeader is base64url(`{"alg":"HS256"}`), byte for byte the header of
	// the docs' example tokens (WeTix sends no "typ").
	jwtHeader = "eyJhbGciOiJIUzI1NiJ9"
)

// audience is copied from the docs' example tokens so clients that peek at
// aud see what WeTix sends.
var audience = []string{"https://sb-open.wetix.my", "https://sb-open.wetix.my/graphql"}

// claims lists the fields in the order the docs' examples show them
// (alphabetical); jti is the emulator's addition, so that two tokens minted in
// the same second still differ and single use can be tracked per token.
type claims struct {
	Aud       []string `json:"aud"`
	ClientKey string   `json:"client_key"`
	Exp       int64    `json:"exp"`
	Iat       int64    `json:"iat"`
	Iss       string   `json:"iss"`
	JTI       string   `json:"jti"`
	Nbf       int64    `json:"nbf"`
	TokenType string   `json:"tokenType"`
}

// newClaims stamps whole seconds, as WeTix does (its example has exp = iat +
// expires_in exactly), so a token lives between ttl-1s and ttl of wall time.
func newClaims(tokenType, clientKey, issuer string, now time.Time, ttlSeconds int64) claims {
	iat := now.Unix()
	return claims{
		Aud:       audience,
		ClientKey: clientKey,
		Exp:       iat + ttlSeconds,
		Iat:       iat,
		Iss:       issuer,
		JTI:       rand.Text(),
		Nbf:       iat,
		TokenType: tokenType,
	}
}

func (c claims) expiresAt() time.Time { return time.Unix(c.Exp, 0) }

// validAt applies JWT semantics: usable from nbf, unusable from exp on.
func (c claims) validAt(now time.Time) bool {
	return !now.Before(time.Unix(c.Nbf, 0)) && now.Before(c.expiresAt())
}

func sign(key []byte, c claims) string {
	payload, err := json.Marshal(c)
	if err != nil {
		panic("wetixtest: marshal claims: " + err.Error()) // plain struct: cannot happen
	}
	input := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return input + "." + base64.RawURLEncoding.EncodeToString(mac(key, input))
}

// verify accepts only tokens signed with key; anything else, including a
// well-formed token from another emulator instance, is simply not ours.
func verify(key []byte, token string) (claims, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		return claims{}, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac(key, parts[0]+"."+parts[1])) {
		return claims{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return claims{}, false
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return claims{}, false
	}
	return c, true
}

func mac(key []byte, input string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(input))
	return h.Sum(nil)
}

// clientKey reproduces how WeTix derives client_key. The docs' example value
// "EgtPQXV0aENsaWVudBjv1orQ4qedsBY" is base64url of an App Engine datastore
// key path element: kind "OAuthClient" (field 2) and numeric id
// 1612417576451877743 (field 3), which is the docs' example client ID. IDs
// that are not canonical positive integers use the string-name field (4).
func clientKey(clientID string) string {
	const kind = "OAuthClient"
	b := []byte{2<<3 | 2, byte(len(kind))}
	b = append(b, kind...)
	if id, err := strconv.ParseInt(clientID, 10, 64); err == nil && id > 0 && strconv.FormatInt(id, 10) == clientID {
		b = append(b, 3<<3|0)
		b = binary.AppendUvarint(b, uint64(id))
	} else {
		b = append(b, 4<<3|2)
		b = binary.AppendUvarint(b, uint64(len(clientID)))
		b = append(b, clientID...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// ttlSeconds is what expires_in reports: whole seconds, never 0, because a
// client treating 0 as "no expiry" would hide bugs in sub-second test TTLs.
func ttlSeconds(d time.Duration) int64 {
	return max(int64(d/time.Second), 1)
}
