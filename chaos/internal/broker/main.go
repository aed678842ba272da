// Command broker runs the one-broker kfake cluster of package embedded as a
// process of its own, so that the chaos suite can kill it (SIGKILL) and
// start it again on the same address and data dir.
//
//	broker -addr 127.0.0.1:PORT -data-dir DIR [-partitions N] [-topics a,b]
//
// It prints "ready <addr>" on stdout once it listens, and closes the
// cluster cleanly (saving its state) on SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/embedded"
	"github.com/fenqi/fenqi/events"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "host:port to listen on")
	dataDir := flag.String("data-dir", "", "where the cluster keeps its topics, records and offsets (required)")
	partitions := flag.Int("partitions", 4, "partitions of each created topic")
	topics := flag.String("topics", "", "comma-separated topics to create (default: fenqi's input, decisions and dlq topics)")
	flag.Parse()
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "broker: -data-dir is required")
		os.Exit(2)
	}
	ts := append(consumers.DefaultTopics().List(), events.TopicDecisions, events.TopicDLQ)
	if *topics != "" {
		ts = strings.Split(*topics, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	k, err := embedded.StartKafka(ctx, embedded.KafkaConfig{
		Addr: *addr, DataDir: *dataDir, Topics: ts, Partitions: int32(*partitions),
		Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "broker: "+f+"\n", a...) },
	})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "broker: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("ready %s\n", k.Addrs()[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	k.Close()
}
