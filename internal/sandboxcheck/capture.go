package sandboxcheck

import (
	"bytes"
	"io"
	"net/http"
	"sync"
)

// captureTransport keeps the last answer's status, content type and body, so
// a question can report what WeTix said while the plugin's own client
// (package client) decides what it means: the check then compares the two
// rather than re-implementing the classification.
type captureTransport struct {
	next http.RoundTripper

	mu   sync.Mutex
	last capturedAnswer
}

type capturedAnswer struct {
	Status      int
	ContentType string
	Body        []byte
}

func (t *captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	// Bounded like the client's own read, so a huge error page cannot fill
	// memory; the client re-reads the same bytes.
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	t.mu.Lock()
	t.last = capturedAnswer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: body}
	t.mu.Unlock()
	if readErr != nil {
		return nil, readErr
	}
	return resp, nil
}

// take returns the last answer and forgets it, so a question never reports
// an earlier question's answer when its own request got none.
func (t *captureTransport) take() capturedAnswer {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.last
	t.last = capturedAnswer{}
	return a
}
