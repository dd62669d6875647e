package wetixtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault makes the emulator misbehave for matching token requests. Installed
// faults form a FIFO queue; each request takes the first one that matches its
// grant. Faults never apply to the /_emulator/ admin API.
//
// By default a fault that answers (Status, Body), drops or truncates stands in
// for WeTix: the grant is not processed, so no pair is issued and a presented
// refresh token stays live. (Truncate then cuts a would-be answer whose tokens
// are valid nowhere.) A fault that only delays or adds headers lets the
// request through afterwards, as a slow but working WeTix would, unless the
// client has given up by then.
//
// Process models "WeTix did the work but the answer was lost": the grant is
// processed first (counted in Successes, refresh token spent) and the fault
// then applies to the answer, including when it is dropped or the client
// gives up during the Delay. OmitRefreshToken and OmitExpiresIn always
// process, since they alter a real answer.
type Fault struct {
	Grant       Grant         // "" matches both token endpoints
	Times       int           // matching requests affected; 0 means until ClearFaults
	Status      int           // status to answer with; 0 keeps the normal one (200 if not processed)
	Body        string        // raw body instead of the normal one; alone it is sent with 200
	ContentType string        // default application/json
	Header      http.Header   // extra response headers, e.g. Retry-After
	Delay       time.Duration // wait before answering; ends early if the client or server goes away
	Drop        bool          // read the request, then close the connection without answering
	Truncate    bool          // declare the full Content-Length, send half the body, close
	// OmitRefreshToken answers normally but without refresh_token and
	// refresh_token_expires_in. On the refresh grant the presented refresh
	// token is then not spent: a server that does not rotate keeps it alive.
	OmitRefreshToken bool
	OmitExpiresIn    bool // answers normally but without expires_in
	Process          bool // process the grant before the fault applies (see above)
}

// Limit returns f affecting only the next n matching requests.
func (f Fault) Limit(n int) Fault { f.Times = n; return f }

// For returns f restricted to grant g.
func (f Fault) For(g Grant) Fault { f.Grant = g; return f }

// FaultStatus answers with code and body; an empty body gets a generic
// RFC 6749-style error object.
func FaultStatus(code int, body string) Fault { return Fault{Status: code, Body: body} }

// FaultHTML answers with code and the kind of HTML page a proxy or load
// balancer in front of WeTix would send.
func FaultHTML(code int) Fault {
	title := fmt.Sprintf("%d %s", code, http.StatusText(code))
	return Fault{
		Status:      code,
		ContentType: "text/html",
		Body:        "<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + title + "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
	}
}

// FaultRetryAfter answers 429 Too Many Requests with Retry-After: seconds.
func FaultRetryAfter(seconds int) Fault {
	return Fault{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {strconv.Itoa(seconds)}}}
}

// FaultInvalidGrant answers exactly as WeTix does for a dead refresh token.
func FaultInvalidGrant() Fault {
	return Fault{Status: http.StatusBadRequest, Body: string(invalidGrant().body)}
}

// FaultInvalidClient answers exactly as WeTix does for bad client credentials.
func FaultInvalidClient() Fault {
	return Fault{
		Status: http.StatusUnauthorized,
		Body:   string(errorResult(http.StatusUnauthorized, "invalid_client", "client authentication failed").body),
		Header: http.Header{"Www-Authenticate": {`Basic realm="WeTix OAuth"`}},
	}
}

// FaultGraphQLError answers code with a GraphQL-style error body, the shape
// the WeTix Open API uses and an OAuth client may meet behind a shared gateway.
func FaultGraphQLError(code int, msg string) Fault {
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"message": msg}}})
	return Fault{Status: code, Body: string(body)}
}

// Fault installs f at the end of the queue. It panics on a fault that could
// never be served (bad status, negative Times or Delay, unknown grant).
func (s *Server) Fault(f Fault) {
	if err := f.validate(); err != nil {
		panic("wetixtest: " + err.Error())
	}
	f.Header = f.Header.Clone() // the caller may reuse its map
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// ClearFaults removes all queued faults.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (f Fault) validate() error {
	switch {
	case f.Grant != "" && f.Grant != GrantClientCredentials && f.Grant != GrantRefresh:
		return fmt.Errorf("unknown grant %q", f.Grant)
	case f.Status != 0 && (f.Status < 200 || f.Status > 599):
		return fmt.Errorf("status %d out of range 200-599", f.Status)
	case f.Times < 0:
		return fmt.Errorf("negative times %d", f.Times)
	case f.Delay < 0:
		return fmt.Errorf("negative delay %s", f.Delay)
	}
	return nil
}

// summary names what f does, for OnRequest; it never includes Body or
// header values.
func (f Fault) summary() string {
	var parts []string
	add := func(on bool, s string) {
		if on {
			parts = append(parts, s)
		}
	}
	add(f.Status != 0, "status="+strconv.Itoa(f.Status))
	add(f.Body != "", "body")
	add(len(f.Header) > 0, "header")
	add(f.Delay > 0, "delay="+f.Delay.String())
	add(f.Drop, "drop")
	add(f.Truncate, "truncate")
	add(f.OmitRefreshToken, "omit-refresh-token")
	add(f.OmitExpiresIn, "omit-expires-in")
	add(f.Process, "process")
	if len(parts) == 0 {
		return "noop"
	}
	return strings.Join(parts, ",")
}

// applyFault writes the answer f calls for; res is the processed answer, or
// nil when the fault stands in for WeTix.
func (s *Server) applyFault(w *recorder, f Fault, res *result) {
	if f.Drop {
		drop(w)
		return
	}
	out := &result{status: http.StatusOK, header: http.Header{}}
	switch {
	case f.Body != "":
		if res != nil {
			out.status = res.status
		}
		out.header.Set("Content-Type", "application/json")
		out.body = []byte(f.Body)
	case res != nil:
		out.status, out.body = res.status, res.body
		out.header = res.header.Clone()
	default:
		out = errorResult(f.Status, errorCode(f.Status), "emulated fault")
	}
	if f.Status != 0 {
		out.status = f.Status
	}
	if f.ContentType != "" {
		out.header.Set("Content-Type", f.ContentType)
	}
	for k, v := range f.Header {
		out.header[k] = append(out.header[k], v...)
	}
	if f.Truncate {
		truncate(w, out)
		return
	}
	writeResult(w, out)
}

// errorCode makes an OAuth-looking code from the status text, e.g. 503 ->
// "service_unavailable", so generic faults still parse as RFC 6749 errors.
func errorCode(status int) string {
	text := http.StatusText(status)
	if text == "" {
		return "server_error"
	}
	return strings.ToLower(strings.NewReplacer(" ", "_", "-", "_", "'", "").Replace(text))
}

// drop hijacks the connection so the client sees it closed with no response
// at all (io.EOF), not an HTTP error it could parse.
func drop(w *recorder) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// ErrAbortHandler also closes the connection without answering.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// truncate writes the response by hand on the hijacked connection because
// net/http would refuse to send fewer bytes than the declared Content-Length.
func truncate(w *recorder, out *result) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	w.status = out.status
	declared := max(len(out.body), 1) // even an empty body must come up short
	out.header.Set("Content-Length", strconv.Itoa(declared))
	out.header.Set("Connection", "close")
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", out.status, http.StatusText(out.status))
	out.header.Write(buf)
	buf.WriteString("\r\n")
	buf.Write(out.body[:len(out.body)/2])
	buf.Flush()
}
