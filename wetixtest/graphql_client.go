package wetixtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// MutationResult is the emulator's (or WeTix's) answer to a signed mutation.
type MutationResult struct {
	Status int
	Data   map[string]json.RawMessage
	Errors []GraphQLError
}

// Code is the first error's extensions.code, "" when the mutation was
// accepted.
func (r MutationResult) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	return r.Errors[0].Extensions["code"]
}

// SendMutation posts mutation(input: $input, signature: $signature) to
// baseURL+"/graphql" the way an integrator's app does: input is the JSON
// text the app signed, sent as is, and signature the argument Vault's sign
// path returned ({"algorithm","timestamp","hash"}).
func SendMutation(ctx context.Context, c *http.Client, baseURL, accessToken, mutation string, input, signature json.RawMessage) (MutationResult, error) {
	query := fmt.Sprintf("mutation Order($input: %sInput!, $signature: SignatureInput!) { %s(input: $input, signature: $signature) { id referenceId } }",
		upperFirst(mutation), mutation)
	body, err := json.Marshal(map[string]any{
		"query":     query,
		"variables": map[string]json.RawMessage{"input": input, "signature": signature},
	})
	if err != nil {
		return MutationResult{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/graphql", bytes.NewReader(body))
	if err != nil {
		return MutationResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := c.Do(req)
	if err != nil {
		return MutationResult{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return MutationResult{}, err
	}
	res := MutationResult{Status: resp.StatusCode}
	var out struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []GraphQLError             `json:"errors"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return res, fmt.Errorf("answer is not GraphQL JSON (status %d): %w", resp.StatusCode, err)
	}
	res.Data, res.Errors = out.Data, out.Errors
	return res, nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
