package main

import (
	"strings"
	"testing"

	"mount-ws/internal/wsstack"
)

func TestWriteStats(t *testing.T) {
	var b strings.Builder
	err := writeStats(&b, wsstack.ControlStats{
		API: wsstack.APIStats{Requests: 12, Minted: 9, ByStatus: map[int]int{200: 9, 429: 2, 0: 1}},
		S3:  map[wsstack.Op]uint64{"GET": 1200, "PUT": 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `Workspace API
  requests                          12
  credentials minted                 9
  answered 200 OK                    9
  answered 429 Too Many Requests     2
  client gave up first               1

S3 requests
  GET                             1200
  PUT                                3
  total                           1203
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
