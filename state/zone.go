package state

import (
	"fmt"
	"sync"
	"time"
)

var zones sync.Map // name -> *time.Location

// loadZone is time.LoadLocation with a cache: loading reads the zone
// database from disk, far too slow for the hot path.
func loadZone(name string) (*time.Location, error) {
	if v, ok := zones.Load(name); ok {
		return v.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("state: time zone %q: %w", name, err)
	}
	zones.Store(name, loc)
	return loc, nil
}
