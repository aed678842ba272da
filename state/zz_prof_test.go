package state_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/state"
)

func TestZZScriptServerTime(t *testing.T) {
	rdb := testenv.Redis(t)
	s, _ := state.New(rdb, state.Config{Now: func() time.Time { return now }})
	ctx := context.Background()
	_ = s.Load(ctx)
	rng := rand.New(rand.NewPCG(1, 2))
	var off int64
	for range 50 {
		if _, err := s.Apply(ctx, benchBatch(rng, 500, 5000, &off)); err != nil {
			t.Fatal(err)
		}
	}
	rdb.ConfigResetStat(ctx)
	for range 100 {
		if _, err := s.Apply(ctx, benchBatch(rng, 500, 5000, &off)); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range strings.Split(rdb.Info(ctx, "commandstats").Val(), "\n") {
		if strings.Contains(l, "evalsha") {
			t.Log(l)
		}
	}
}
