package shadow

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The browser window of the screenshot.
const shotWidth, shotHeight = 1200, 1600

// findBrowser is $FENQI_CHROMIUM, else the first of chromium,
// chromium-browser, google-chrome on PATH; "" when there is none.
func findBrowser() string {
	if p := os.Getenv("FENQI_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestHTMLScreenshot opens the HTML report in headless Chromium, takes a
// screenshot and checks that it shows the plots: enough pixels of the
// histogram's and the candidate's bar colours, and a page that is not one
// colour. With FENQI_SCREENSHOT_DIR set, the page and the screenshot are
// copied there for a human to look at.
func TestHTMLScreenshot(t *testing.T) {
	required := os.Getenv("FENQI_REQUIRE_BROWSER") == "1"
	if testing.Short() && !required {
		t.Skip("-short: no browser screenshot (FENQI_REQUIRE_BROWSER=1 runs it anyway)")
	}
	browser := findBrowser()
	if browser == "" {
		const how = "no Chromium: set FENQI_CHROMIUM, or put chromium, chromium-browser or google-chrome on PATH " +
			"(Debian: apt-get install -y chromium)"
		if required {
			t.Fatal(how + "; FENQI_REQUIRE_BROWSER=1 requires one")
		}
		t.Skip(how)
	}

	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	shot := filepath.Join(dir, "report.png")
	rep := Build(append(handRecords(), syntheticRecords(300)...))
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteHTML(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
		"--window-size=" + strconv.Itoa(shotWidth) + "," + strconv.Itoa(shotHeight),
		"--screenshot=" + shot,
		"file://" + page,
	}
	cmd := exec.CommandContext(ctx, browser, args...)
	cmd.WaitDelay = 5 * time.Second // do not wait on the browser's helpers past the timeout
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v (timeout: %v)\n%s", browser, args, err, ctx.Err(), out)
	}

	img, err := decodePNG(shot)
	if err != nil {
		t.Fatalf("screenshot: %v\nbrowser said:\n%s", err, out)
	}
	if d := os.Getenv("FENQI_SCREENSHOT_DIR"); d != "" {
		if err := copyTo(d, page, shot); err != nil {
			t.Errorf("copy the screenshot: %v", err)
		} else {
			t.Logf("screenshot in %s", filepath.Join(d, "report.png"))
		}
	}

	b := img.Bounds()
	if b.Dx() != shotWidth || b.Dy() != shotHeight {
		t.Errorf("screenshot is %dx%d; want %dx%d", b.Dx(), b.Dy(), shotWidth, shotHeight)
	}
	colours := map[[3]uint8]int{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8)}]++
		}
	}
	total := b.Dx() * b.Dy()
	most := 0
	for _, n := range colours {
		most = max(most, n)
	}
	if len(colours) < 20 || most > total*95/100 {
		t.Errorf("the page looks blank: %d colours, the commonest on %d of %d pixels", len(colours), most, total)
	}
	for _, c := range []struct {
		name, hex string
		min       int
	}{{"histogram bars", histogramColour, 3000}, {"shadow alert bars", shadowColour, 1000}, {"live alert bars", liveColour, 1000}} {
		want := rgb(t, c.hex)
		n := 0
		for col, k := range colours {
			if near(col, want, 6) {
				n += k
			}
		}
		t.Logf("%s (%s): %d pixels", c.name, c.hex, n)
		if n < c.min {
			t.Errorf("%s: %d pixels of %s; want at least %d", c.name, n, c.hex, c.min)
		}
	}
}

func decodePNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

// copyTo copies files into dir, making it if need be.
func copyTo(dir string, files ...string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func rgb(t *testing.T, hex string) [3]uint8 {
	t.Helper()
	var c [3]uint8
	if _, err := fmt.Sscanf(hex, "#%02x%02x%02x", &c[0], &c[1], &c[2]); err != nil {
		t.Fatalf("colour %q: %v", hex, err)
	}
	return c
}

func near(a, b [3]uint8, tol int) bool {
	for i := range a {
		if d := int(a[i]) - int(b[i]); d > tol || d < -tol {
			return false
		}
	}
	return true
}
