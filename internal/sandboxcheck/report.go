package sandboxcheck

import (
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown writes the report: a header saying what was checked, one
// table row per question, and the advice for every line that needs it. The
// text was redacted as it was collected; it is safe to paste into an issue.
func (r Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# WeTix sandbox check\n\n")
	fmt.Fprintf(&b, "- run at: %s\n- OAuth: %s\n- GraphQL: %s\n- client ID: %s\n\n",
		r.Started.Format("2006-01-02T15:04:05Z"), r.OAuthURL, r.GraphQLURL, cell(r.ClientID))
	b.WriteString("| question | what WeTix did | what the plugin assumes | verdict |\n")
	b.WriteString("| --- | --- | --- | --- |\n")
	for _, a := range r.Answers {
		fmt.Fprintf(&b, "| `%s`: %s | %s | %s | %s |\n", a.ID, cell(a.Question), cell(a.Finding), cell(a.Assumed), a.Verdict)
	}
	var todo []Answer
	for _, a := range r.Answers {
		if a.Advice != "" {
			todo = append(todo, a)
		}
	}
	if len(todo) > 0 {
		b.WriteString("\n## What to do\n\n")
		for _, a := range todo {
			fmt.Fprintf(&b, "- `%s` (%s): %s\n", a.ID, a.Verdict, cell(a.Advice))
		}
	} else {
		b.WriteString("\nEvery answer matches what the plugin assumes.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell keeps a value on one table row.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
