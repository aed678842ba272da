package consumers_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/producers"
)

// Issue 12 #1: a ~1 MiB record (under the broker's limit, over fenqid's
// -max-event-bytes) made a dead letter over kafka-go's 1 MiB batch limit,
// refused for good: the pipeline exited, restarted and exited again, and
// the records behind it were never applied. Now the dead letter keeps a
// prefix, and the valid record behind it on the same partition is applied.
func TestHugeRecordDoesNotStopThePartition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stop := e.start(t, nil)
	huge := record(t, pay("huge", "u-huge", now, 100))
	// 1,048,000 bytes: the input fits in a 1 MiB batch, its dead letter
	// with the fenqi-* headers would not.
	huge.Value = append(huge.Value[:len(huge.Value)-1], append(bytes.Repeat([]byte(" "), 1048000-len(huge.Value)), '}')...)
	testenv.Produce(t, e.kafka.Addrs(), "fenqi.payments", huge, record(t, pay("after", "u-huge", now, 240)))
	dl := testenv.ReadN(t, e.kafka.Addrs(), "fenqi.dlq", 1, 30*time.Second)[0]
	if header(dl, producers.HeaderTruncated) == "" || len(dl.Value) > producers.DeadLetterPrefixBytes ||
		header(dl, producers.HeaderTopic) != "fenqi.payments" {
		t.Fatalf("dead letter: %d bytes of value, headers %v", len(dl.Value), dl.Headers)
	}
	waitFor(t, "the payment behind the huge record", func() bool {
		_, fen := spend(t, e.store, "u-huge")
		return fen == 240
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
