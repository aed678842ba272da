// Package secret reads the secret settings of fenqid and fenqictl
// (passwords, tokens) from a file or the environment, never from the
// command line, where any local user can read them in /proc/<pid>/cmdline.
//
// A secret setting NAME (say "redis-password") is read, in this order, from
//   - the file named by -NAME-file / FENQI_NAME_FILE (a trailing newline is
//     dropped, so `echo s3cret > file` works), or
//   - the variable FENQI_NAME.
//
// Giving both is an error, and so is -NAME on the command line: the flag is
// registered only so that the mistake gets a message that says what to do.
package secret

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Setting is one secret setting registered on a flag set.
type Setting struct {
	Name  string // the flag name, e.g. "redis-password"
	File  string // the value of -NAME-file (or FENQI_NAME_FILE)
	given bool   // -NAME was on the command line: refused
}

// EnvName is the variable of a setting: FENQI_ + the name upper-cased,
// dashes as underscores.
func EnvName(name string) string {
	return "FENQI_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Register adds -NAME (refused, for a readable error) and -NAME-file to fs.
// what says what the secret is for, as in a flag's usage.
func Register(fs *flag.FlagSet, name, what string) *Setting {
	s := &Setting{Name: name}
	fs.Var((*refused)(s), name, fmt.Sprintf("%s: not accepted on the command line; set %s or -%s-file", what, EnvName(name), name))
	fs.StringVar(&s.File, name+"-file", "", fmt.Sprintf("file holding %s (env %s_FILE; or the secret itself in %s)", what, EnvName(name), EnvName(name)))
	return s
}

// refused is the flag.Value of -NAME: it only remembers that it was given.
type refused Setting

func (r *refused) String() string { return "" }
func (r *refused) Set(string) error {
	r.given = true // the value itself is not kept
	return nil
}

// IsSecret reports whether f is a secret's -NAME flag: a loop that fills
// flags from FENQI_* variables must skip it (Resolve reads the variable).
func IsSecret(f *flag.Flag) bool {
	_, ok := f.Value.(*refused)
	return ok
}

// Resolve returns the secret ("" when none is set). fileFromEnv says
// whether -NAME-file still needs its variable read (the caller's own
// env-filling loop may already have done it; pass false then).
func (s *Setting) Resolve(getenv func(string) string, fileFromEnv bool) (string, error) {
	if s.given {
		return "", fmt.Errorf("-%s: a secret is not accepted on the command line (any local user can read it there); set %s in the environment or name a file with -%s-file / %s_FILE",
			s.Name, EnvName(s.Name), s.Name, EnvName(s.Name))
	}
	file := s.File
	if file == "" && fileFromEnv && getenv != nil {
		file = getenv(EnvName(s.Name) + "_FILE")
	}
	env := ""
	if getenv != nil {
		env = getenv(EnvName(s.Name))
	}
	if file != "" && env != "" {
		return "", fmt.Errorf("%s and %s_FILE are both set: keep one", EnvName(s.Name), EnvName(s.Name))
	}
	if file == "" {
		return env, nil
	}
	return ReadFile(file)
}

// ReadFile reads a secret file, dropping one trailing newline (CRLF too).
// The error names the file, never its content.
func ReadFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading secret file: %w", err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return v, nil
}
