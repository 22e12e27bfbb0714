// An S3-compatible server for the tests (gofakes3, in memory): the storage package's S3
// backend and the platform's S3 mode run against it. Prints "listening on http://HOST:PORT"
// once it accepts connections; stops on SIGTERM or SIGINT.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on (port 0: a free one)")
	bucket := flag.String("bucket", "", "a bucket to create at start")
	flag.Parse()

	backend := s3mem.New()
	if *bucket != "" {
		if err := backend.CreateBucket(*bucket); err != nil {
			log.Fatalf("creating bucket %q: %v", *bucket, err)
		}
	}
	faker := gofakes3.New(backend, gofakes3.WithAutoBucket(false))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listening on %s: %v", *addr, err)
	}
	srv := &http.Server{Handler: faker.Server()}
	fmt.Printf("listening on http://%s\n", ln.Addr())
	os.Stdout.Sync()

	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
		srv.Close()
	case err := <-done:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}
}
