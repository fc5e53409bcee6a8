// Replays dashboard queries from N concurrent Flight SQL clients (Apache Arrow's own Go
// client, one connection each) and prints one JSON line: clients, queries, p50_ms, p95_ms,
// qps. A client far cheaper than Python's ADBC, so that N of them on the server's own
// machine measure the server rather than themselves.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	addr := flag.String("addr", "", "host:port of the Flight SQL server")
	clients := flag.Int("clients", 1, "concurrent clients, each with its own connection")
	rounds := flag.Int("rounds", 2, "times each client runs every query")
	queriesFile := flag.String("queries", "", "JSON array of the SQL to replay")
	flag.Parse()

	text, err := os.ReadFile(*queriesFile)
	if err != nil {
		fail(err)
	}
	var queries []string
	if err := json.Unmarshal(text, &queries); err != nil {
		fail(err)
	}

	var mu sync.Mutex
	var latencies []float64
	var firstErr error
	var wg sync.WaitGroup
	started := time.Now()
	for i := 0; i < *clients; i++ {
		wg.Add(1)
		go func(index int) {
			defer wg.Done()
			mine, err := replay(*addr, queries, index, *rounds)
			mu.Lock()
			defer mu.Unlock()
			latencies = append(latencies, mine...)
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("client %d: %w", index, err)
			}
		}(i)
	}
	wg.Wait()
	wall := time.Since(started).Seconds()
	if firstErr != nil {
		fail(firstErr)
	}
	sort.Float64s(latencies)
	n := len(latencies)
	p50 := latencies[n/2]
	if n%2 == 0 {
		p50 = (latencies[n/2-1] + latencies[n/2]) / 2
	}
	// As the Python harness picks it: the value at rank round(0.95 n).
	k := int(float64(n)*0.95+0.5) - 1
	if k > n-1 {
		k = n - 1
	}
	out, _ := json.Marshal(map[string]any{
		"clients": *clients, "queries": n, "p50_ms": p50, "p95_ms": latencies[k], "qps": float64(n) / wall,
	})
	fmt.Println(string(out))
}

// replay runs every query `rounds` times on one connection, starting at query `index`.
func replay(addr string, queries []string, index, rounds int) ([]float64, error) {
	ctx := context.Background()
	client, err := flightsql.NewClient(addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer client.Close()
	var mine []float64
	for r := 0; r < rounds; r++ {
		for k := range queries {
			sql := queries[(index+k)%len(queries)]
			t := time.Now()
			if err := query(ctx, client, sql); err != nil {
				return mine, err
			}
			mine = append(mine, float64(time.Since(t).Nanoseconds())/1e6)
		}
	}
	return mine, nil
}

// query runs `sql` and reads every row of every endpoint.
func query(ctx context.Context, client *flightsql.Client, sql string) error {
	info, err := client.Execute(ctx, sql)
	if err != nil {
		return err
	}
	for _, endpoint := range info.Endpoint {
		reader, err := client.DoGet(ctx, endpoint.Ticket)
		if err != nil {
			return err
		}
		for reader.Next() {
		}
		err = reader.Err()
		reader.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
