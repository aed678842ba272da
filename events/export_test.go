package events

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// Hooks for the external tests (decode_mix_test.go), which use the
// simulator (an internal test cannot import it: it imports events).

// DecodeOracle is Decode implemented again on encoding/json
// (decode_oracle_test.go).
func (d Decoder) DecodeOracle(key []byte, headers []Header, value []byte) (Event, error) {
	return d.oracleDecode(key, headers, value)
}

// CheckSameAsOracle fails t when Decode and DecodeOracle disagree on the
// record.
func CheckSameAsOracle(t testing.TB, d Decoder, key []byte, headers []Header, value []byte) {
	t.Helper()
	checkSameAsOracle(t, d, input{key, headers, value})
}

// MutateJSON returns a copy of v with a random small change (mutateJSON).
func MutateJSON(rng *rand.Rand, v []byte) []byte { return mutateJSON(rng, slices.Clone(v)) }
