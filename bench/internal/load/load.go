// Package load runs the benchmarks' closed-loop load: n requests from a
// number of concurrent clients, each sending its next request when the
// last is answered, and compares two ways of serving the same requests in
// paired rounds.
package load

import (
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Result is one run's throughput and latency, and the CPU time the
// process spent per request (client, server and everything else the
// process runs, such as an in-process chain): on a busy shared machine a
// steadier figure than the rate.
type Result struct {
	Rate     float64 // requests a second
	P50, P99 time.Duration
	CPU      time.Duration
}

// Run sends requests 0..n-1 from clients goroutines, each one after
// another, and measures them. f reports failure its own way (the
// benchmarks are for zero errors, so they stop on the first).
func Run(n, clients int, f func(i int)) Result {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t := time.Now()
				f(i)
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	cpu := (cpuTime() - cpu0) / time.Duration(n)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return Result{Rate: float64(n) / el.Seconds(), P50: lat[n/2], P99: lat[n*99/100], CPU: cpu}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Comparison is the outcome of paired rounds of a baseline and ours.
type Comparison struct {
	Base, Ours Result    // the median rounds of each
	Ratios     []float64 // ours/base of each pair, ascending
	// BaseCPU and OursCPU are the medians of each side's CPU per request.
	BaseCPU, OursCPU time.Duration
}

// Ratio is the median of the pairs' throughput ratios.
func (c Comparison) Ratio() float64 { return c.Ratios[len(c.Ratios)/2] }

// AddedP50 and AddedP99 are the latency ours adds, median round against
// median round.
func (c Comparison) AddedP50() time.Duration { return c.Ours.P50 - c.Base.P50 }
func (c Comparison) AddedP99() time.Duration { return c.Ours.P99 - c.Base.P99 }

// Pairs is each pair's ratio, for the printout.
func (c Comparison) Pairs() string {
	var parts []string
	for _, r := range c.Ratios {
		parts = append(parts, fmt.Sprintf("%.3f", r))
	}
	return strings.Join(parts, " ")
}

// paired runs rounds pairs of rounds of n requests from clients: base and
// ours side by side, in alternating order, so that a slow spell of a shared
// machine lands on both sides of one pair rather than on one side of the
// whole comparison. Each side's first round may be wrapped (to profile
// it) by first, which is told the side ("base", "ours").
func paired(rounds, n, clients int, base, ours func(i int), first func(side string, run func() Result) Result) Comparison {
	var c Comparison
	var bs, os []Result
	for round := 0; round < rounds; round++ {
		theirs := func() Result { return Run(n, clients, base) }
		mine := func() Result { return Run(n, clients, ours) }
		if round == 0 && first != nil {
			plainBase, plainOurs := theirs, mine
			theirs = func() Result { return first("base", plainBase) }
			mine = func() Result { return first("ours", plainOurs) }
		}
		var b, o Result
		if round%2 == 0 {
			b, o = theirs(), mine()
		} else {
			o, b = mine(), theirs()
		}
		bs, os = append(bs, b), append(os, o)
		c.Ratios = append(c.Ratios, o.Rate/b.Rate)
	}
	sort.Float64s(c.Ratios)
	c.BaseCPU, c.OursCPU = medianCPU(bs), medianCPU(os)
	c.Base, c.Ours = median(bs), median(os)
	return c
}

func medianCPU(rs []Result) time.Duration {
	cpu := make([]time.Duration, len(rs))
	for i, r := range rs {
		cpu[i] = r.CPU
	}
	sort.Slice(cpu, func(i, j int) bool { return cpu[i] < cpu[j] })
	return cpu[len(cpu)/2]
}

func median(rs []Result) Result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Rate < rs[j].Rate })
	return rs[len(rs)/2]
}

// MS is a duration in milliseconds, for printing.
func MS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Setup is what Compare measures and how it prints it.
type Setup struct {
	Clients    string // client counts, comma separated ("1,8")
	Rounds, N  int    // paired rounds per client count, requests per round
	Title      string // the line above each table ("tiny-lm, 16 tokens per answer")
	Base, Ours string // the rows' names
	Ratio      string // the ratio's name ("paid/free")
	Targets    string // goals and floors, printed beside the figures
	CPUProfile string // if set, the first round of ours is profiled to CPUProfile.<clients>, of the baseline to CPUProfile.base.<clients>
}

// Compare runs paired for each client count (after a warm-up of both)
// and prints each comparison.
func Compare(s Setup, base, ours func(i int)) error {
	for _, cs := range strings.Split(s.Clients, ",") {
		var clients int
		if _, err := fmt.Sscan(cs, &clients); err != nil || clients < 1 {
			return fmt.Errorf("client count %q: want a positive number", cs)
		}
		Run(50, clients, base)
		Run(50, clients, ours)
		var first func(string, func() Result) Result
		if s.CPUProfile != "" {
			first = func(side string, run func() Result) Result {
				name := fmt.Sprintf("%s.%d", s.CPUProfile, clients)
				if side == "base" {
					name = fmt.Sprintf("%s.base.%d", s.CPUProfile, clients)
				}
				f, err := os.Create(name)
				if err != nil {
					log.Fatal(err)
				}
				defer f.Close()
				pprof.StartCPUProfile(f)
				defer pprof.StopCPUProfile()
				return run()
			}
		}
		c := paired(s.Rounds, s.N, clients, base, ours, first)
		b, o := c.Base, c.Ours
		fmt.Printf("\n%s, %d concurrent client(s), no errors; medians of %d paired rounds\n", s.Title, clients, s.Rounds)
		fmt.Printf("%-26s %10s %10s %10s\n", "", "answers/s", "p50 ms", "p99 ms")
		fmt.Printf("%-26s %10.0f %10.3f %10.3f\n", s.Base, b.Rate, MS(b.P50), MS(b.P99))
		fmt.Printf("%-26s %10.0f %10.3f %10.3f\n", s.Ours, o.Rate, MS(o.P50), MS(o.P99))
		fmt.Printf("ratio %s: %.3f; added p50 %.3f ms, p99 %.3f ms (%s)\n", s.Ratio, c.Ratio(), MS(c.AddedP50()), MS(c.AddedP99()), s.Targets)
		fmt.Printf("  each pair's ratio: %s\n", c.Pairs())
		fmt.Printf("  CPU per request (the whole process, median round): %s %d µs, %s %d µs, ratio %.3f\n",
			s.Base, c.BaseCPU.Microseconds(), s.Ours, c.OursCPU.Microseconds(), float64(c.BaseCPU)/float64(c.OursCPU))
	}
	return nil
}
