// Package ratelimit implements a keyed token-bucket limiter with an HTTP middleware and a
// janitor that forgets idle keys. Fixture for the autocomplete replay benchmark.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrLimited is returned when a key has no tokens left.
var ErrLimited = errors.New("ratelimit: limited")

// Clock abstracts time so tests can drive the limiter.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Config describes one limiter.
type Config struct {
	Rate    float64       // tokens added per second
	Burst   int           // bucket capacity
	IdleTTL time.Duration // keys unused for this long are dropped
	Clock   Clock
}

func (c Config) validate() error {
	if c.Rate <= 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return fmt.Errorf("ratelimit: rate must be positive, got %v", c.Rate)
	}
	if c.Burst < 1 {
		return fmt.Errorf("ratelimit: burst must be at least 1, got %d", c.Burst)
	}
	if c.IdleTTL < 0 {
		return fmt.Errorf("ratelimit: negative idle TTL %v", c.IdleTTL)
	}
	return nil
}

type bucket struct {
	tokens float64
	last   time.Time
}

// Limiter hands out tokens per key.
type Limiter struct {
	cfg     Config
	mu      sync.Mutex
	buckets map[string]*bucket
}

// New returns a limiter for cfg.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.IdleTTL == 0 {
		cfg.IdleTTL = 10 * time.Minute
	}
	return &Limiter{cfg: cfg, buckets: make(map[string]*bucket)}, nil
}

// refill tops up b for the time elapsed since its last use. The caller holds l.mu.
func (l *Limiter) refill(b *bucket, now time.Time) {
	elapsed := now.Sub(b.last).Seconds()
	if elapsed > 0 {
		b.tokens = math.Min(float64(l.cfg.Burst), b.tokens+elapsed*l.cfg.Rate)
		b.last = now
	}
}

// AllowN takes n tokens for key if it has them.
func (l *Limiter) AllowN(key string, n int) (bool, time.Duration) {
	if n <= 0 {
		return true, 0
	}
	now := l.cfg.Clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: float64(l.cfg.Burst), last: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens >= float64(n) {
		b.tokens -= float64(n)
		return true, 0
	}
	missing := float64(n) - b.tokens
	wait := time.Duration(missing / l.cfg.Rate * float64(time.Second))
	return false, wait
}

// Allow takes one token for key.
func (l *Limiter) Allow(key string) bool {
	ok, _ := l.AllowN(key, 1)
	return ok
}

// Wait blocks until key has a token or ctx ends.
func (l *Limiter) Wait(ctx context.Context, key string) error {
	for {
		ok, wait := l.AllowN(key, 1)
		if ok {
			return nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// Forget drops keys idle for longer than the TTL and returns how many it dropped.
func (l *Limiter) Forget() int {
	now := l.cfg.Clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	dropped := 0
	for key, b := range l.buckets {
		if now.Sub(b.last) > l.cfg.IdleTTL {
			delete(l.buckets, key)
			dropped++
		}
	}
	return dropped
}

// Len reports how many keys the limiter tracks.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// RunJanitor calls Forget every interval until ctx ends.
func (l *Limiter) RunJanitor(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if n := l.Forget(); n > 0 {
				_ = n // a real service would log this
			}
		}
	}
}

// KeyFunc picks the rate-limit key of a request.
type KeyFunc func(*http.Request) string

// ByClientIP keys requests by the client address, honouring one trusted proxy header.
func ByClientIP(trustForwarded bool) KeyFunc {
	return func(r *http.Request) string {
		if trustForwarded {
			if fwd := r.Header.Get("X-Forwarded-For"); fwd != "" {
				first, _, _ := strings.Cut(fwd, ",")
				return strings.TrimSpace(first)
			}
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		return host
	}
}

// Middleware rejects requests over the limit with 429 and a Retry-After header.
func Middleware(l *Limiter, key KeyFunc, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := l.AllowN(key(r), 1)
		if !ok {
			seconds := int(math.Ceil(wait.Seconds()))
			if seconds < 1 {
				seconds = 1
			}
			w.Header().Set("Retry-After", strconv.Itoa(seconds))
			http.Error(w, ErrLimited.Error(), http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Stats is a point-in-time view for a debug endpoint.
type Stats struct {
	Keys    int            `json:"keys"`
	Lowest  map[string]int `json:"lowest"`
	Sampled time.Time      `json:"sampled"`
}

// Snapshot reports the keys with the fewest tokens left, at most limit of them.
func (l *Limiter) Snapshot(limit int) Stats {
	now := l.cfg.Clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	type pair struct {
		key    string
		tokens int
	}
	pairs := make([]pair, 0, len(l.buckets))
	for key, b := range l.buckets {
		l.refill(b, now)
		pairs = append(pairs, pair{key, int(b.tokens)})
	}
	for i := 1; i < len(pairs); i++ {
		for j := i; j > 0 && pairs[j].tokens < pairs[j-1].tokens; j-- {
			pairs[j], pairs[j-1] = pairs[j-1], pairs[j]
		}
	}
	lowest := make(map[string]int)
	for i := 0; i < len(pairs) && i < limit; i++ {
		lowest[pairs[i].key] = pairs[i].tokens
	}
	return Stats{Keys: len(l.buckets), Lowest: lowest, Sampled: now}
}
