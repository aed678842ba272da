package main

import (
	"strings"
	"testing"
)

// What an operator sees when the command line is wrong or asks for help.
// None of these reaches a broker or fenqid.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout string // substring
		stderr string // substring
		err    string // substring of the error main prints
	}{
		{name: "no command", args: nil, code: 2, stderr: "Usage:", err: "no command given"},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, err: `unknown command "frobnicate"`},
		{name: "help", args: []string{"help"}, code: 0, stdout: "fenqictl dlq replay"},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: "fenqictl produce"},
		{name: "produce --help", args: []string{"produce", "--help"}, code: 0, stderr: "Usage: fenqictl produce [flags] FILE|-"},
		{name: "tail -h", args: []string{"tail", "-h"}, code: 0, stderr: "-from-beginning"},
		{name: "dlq list --help", args: []string{"dlq", "list", "--help"}, code: 0, stderr: "-offset-from"},
		{name: "dlq replay --help", args: []string{"dlq", "replay", "--help"}, code: 0, stderr: "-force"},
		{name: "simulate --help", args: []string{"simulate", "--help"}, code: 0, stderr: "-malformed-ratio"},
		{name: "explain --help", args: []string{"explain", "--help"}, code: 0, stderr: "Usage: fenqictl explain"},
		{name: "dlq alone", args: []string{"dlq"}, code: 2, err: "want list or replay"},
		{name: "dlq unknown", args: []string{"dlq", "purge"}, code: 2, err: `unknown command "purge"`},
		{name: "unknown flag", args: []string{"tail", "--follow"}, code: 2, stderr: "flag provided but not defined: -follow"},
		{name: "produce without file", args: []string{"produce"}, code: 2, err: "want one FILE"},
		{name: "produce missing file", args: []string{"produce", "/nonexistent/events.jsonl"}, code: 1, err: "no such file"},
		{name: "bad brokers flag", args: []string{"tail", "--brokers", "kafka"}, code: 2, err: `"kafka" is not host:port`},
		{name: "bad brokers variable", args: []string{"tail"}, env: map[string]string{"FENQI_KAFKA_BROKERS": "a:1,b"}, code: 2, err: `"b" is not host:port`},
		{name: "same topic twice", args: []string{"simulate", "--topic-logins", "fenqi.payments"}, code: 2, err: `are both "fenqi.payments"`},
		{name: "empty topic", args: []string{"tail", "--topic-decisions", ""}, code: 2, err: "--topic-decisions must not be empty"},
		{name: "bad duration", args: []string{"simulate", "--duration", "-1s"}, code: 2, err: "--duration"},
		{name: "offer --help", args: []string{"offer", "--help"}, code: 0, stderr: "-amount-fen"},
		{name: "explain bad api", args: []string{"explain", "--api", "ftp://fenqid", "u-1001"}, code: 2, err: `"ftp://fenqid" is not an http:// or https:// URL`},
		{name: "offer without amount", args: []string{"offer", "u-1001", "--periods", "12"}, code: 2, stderr: "--amount-fen must be a positive number"},
		{name: "epoch --help", args: []string{"epoch", "--help"}, code: 0, stderr: "deleted and recreated"},
		{name: "help lists epoch", args: []string{"help"}, code: 0, stdout: "fenqictl epoch [flags] --raise TOPIC"},
		{name: "explain without user", args: []string{"explain"}, code: 2, stderr: "want exactly one USER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCmd(t, tt.env, "", tt.args...)
			if r.code() != tt.code {
				t.Errorf("exit status %d, want %d", r.code(), tt.code)
			}
			if !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("stdout does not contain %q", tt.stdout)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q", tt.stderr)
			}
			if tt.err != "" && (r.err == nil || !strings.Contains(r.err.Error(), tt.err)) {
				t.Errorf("error %v, want %q", r.err, tt.err)
			}
		})
	}
}

// A topic flag not given is read from the variable fenqid reads.
func TestTopicFromEnvironment(t *testing.T) {
	t.Parallel()
	c, _, _ := newTestCLI(map[string]string{"FENQI_TOPIC_LOGINS": "ops.logins", "FENQI_KAFKA_BROKERS": "k:9092"}, "")
	var brokers string
	var topics inputTopics
	fs := c.flagSet("x", "", "")
	fs.brokers(&brokers)
	fs.inputs(&topics)
	if _, err := c.parse(fs, []string{"--topic-payments", "ops.payments"}); err != nil {
		t.Fatal(err)
	}
	want := inputTopics{"ops.payments", "ops.logins", defaultRepayments, defaultProfiles, defaultOperator}
	if topics != want || brokers != "k:9092" {
		t.Errorf("topics %+v brokers %q, want %+v k:9092", topics, brokers, want)
	}
}
