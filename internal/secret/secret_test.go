package secret

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parse(t *testing.T, args []string, env map[string]string) (string, error) {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s := Register(fs, "redis-password", "the Redis password")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return s.Resolve(func(k string) string { return env[k] }, true)
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantErr string
	}{
		{"none", nil, nil, "", ""},
		{"env", nil, map[string]string{"FENQI_REDIS_PASSWORD": "e"}, "e", ""},
		{"file flag", []string{"-redis-password-file", file}, nil, "from-file", ""},
		{"file env", nil, map[string]string{"FENQI_REDIS_PASSWORD_FILE": file}, "from-file", ""},
		{"flag refused", []string{"-redis-password", "s3cret"}, nil, "", "FENQI_REDIS_PASSWORD"},
		{"both", []string{"-redis-password-file", file}, map[string]string{"FENQI_REDIS_PASSWORD": "e"}, "", "both set"},
		{"missing file", []string{"-redis-password-file", filepath.Join(dir, "nope")}, nil, "", "reading secret file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parse(t, c.args, c.env)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("the error shows the secret: %v", err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
