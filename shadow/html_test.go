package shadow

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func writeHTML(t *testing.T, r Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatalf("WriteHTML: %v", err)
	}
	return buf.String()
}

// elements counts the elements of the parsed page by tag name, and
// collects the text of <title>.
func elements(t *testing.T, page string) (map[string]int, string) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("parse HTML: %v", err)
	}
	counts := map[string]int{}
	title := ""
	var walk func(n *html.Node, inSVG bool)
	walk = func(n *html.Node, inSVG bool) {
		if n.Type == html.ElementNode {
			counts[n.Data]++
			if n.Data == "svg" {
				inSVG = true
			}
			if n.Data == "title" && !inSVG && n.FirstChild != nil {
				title = n.FirstChild.Data
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inSVG)
		}
	}
	walk(doc, false)
	return counts, title
}

func TestWriteHTML(t *testing.T) {
	recs := append(handRecords(), syntheticRecords(60)...)
	page := writeHTML(t, Build(recs))

	counts, title := elements(t, page)
	if counts["svg"] != 2 {
		t.Errorf("%d <svg> elements; want 2 (histogram, alerts)", counts["svg"])
	}
	if counts["rect"] < 7 || counts["table"] < 5 || counts["style"] != 1 {
		t.Errorf("elements %v: want bars, tables and one <style>", counts)
	}
	if !strings.Contains(title, liveV) || !strings.Contains(title, shadowV) {
		t.Errorf("title %q lacks a policy version", title)
	}
	// Self-contained: no script, nothing fetched from elsewhere.
	low := strings.ToLower(page)
	for _, bad := range []string{"<script", "http://", "https://", "<link", "<img", "<iframe", "url(", "@import", "src="} {
		if strings.Contains(low, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	// Untrusted text is escaped: the user id <b>x</b> and the rule
	// <i>rule</i> appear as text, never as elements.
	if counts["b"] != 0 || counts["i"] != 0 {
		t.Errorf("an untrusted name became an element: %v", counts)
	}
	if !strings.Contains(page, "&lt;b&gt;x&lt;/b&gt;") || !strings.Contains(page, "&lt;i&gt;rule&lt;/i&gt;") {
		t.Errorf("escaped user id or rule missing from the page")
	}
	for _, s := range []string{histogramColour, liveColour, shadowColour, "night_large_payment", "FENQI_LOW_SCORE", "cause-f1"} {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %q", s)
		}
	}
}

func TestWriteHTMLEmpty(t *testing.T) {
	page := writeHTML(t, Build(nil))
	counts, _ := elements(t, page)
	if counts["svg"] != 0 || !strings.Contains(page, "No quota pairs.") || !strings.Contains(page, "No alerts") {
		t.Errorf("empty report: %v", counts)
	}
}

func TestNiceStep(t *testing.T) {
	for x, want := range map[float64]float64{0: 1, 0.5: 1, 1: 1, 1.2: 2, 3: 5, 7: 10, 12: 20, 49: 50, 250: 500} {
		if got := niceStep(x); got != want {
			t.Errorf("niceStep(%v) = %v; want %v", x, got, want)
		}
	}
}
