package conn

import (
	"context"
	"time"
)

// CheckWithin is KafkaConn.Check with a shorter timeout, for tests.
func CheckWithin(ctx context.Context, c *KafkaConn, brokers []string, timeout time.Duration) error {
	return c.checkWithin(ctx, brokers, timeout)
}
