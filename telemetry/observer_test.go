package telemetry_test

import (
	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/telemetry"
)

// *Metrics has the consumer's Observer method set. (An external test
// package, so that consumers may import telemetry without a cycle.)
var _ consumers.Observer = (*telemetry.Metrics)(nil)
