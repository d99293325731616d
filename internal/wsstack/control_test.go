package wsstack

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestControlHandler(t *testing.T) {
	t.Cleanup(func() { testStack.API.ClearFaults(); testStack.S3.ClearFaults() })
	srv := httptest.NewServer(ControlHandler(testStack))
	defer srv.Close()
	post := func(body string) (int, string) {
		resp, err := http.Post(srv.URL+"/fault", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	tests := []struct {
		body    string
		status  int
		message string
	}{
		{`{"api_fail":{"status":502,"count":1}}`, 200, "answer 502"},
		{`{"api_fail":{"status":200,"count":1}}`, 400, "4xx/5xx"},
		{`{"api_body":{"kind":"garbled","count":1}}`, 400, "malformed or truncated"},
		{`{"api_latency":"soon"}`, 400, "not a duration"},
		{`{"ttl":"10ms"}`, 400, "at least 1s"},
		{`{"revoke":"ASIANOSUCHKEY"}`, 400, "no credentials"},
		{`{"s3_fault":{"ops":["GET"]}}`, 400, "status"},
		{`{"nonsense":1}`, 400, "unknown field"},
		{`{}`, 400, "name one action"},
	}
	for _, tt := range tests {
		status, msg := post(tt.body)
		if status != tt.status || !strings.Contains(msg, tt.message) {
			t.Errorf("%s: %d %q, want %d containing %q", tt.body, status, msg, tt.status, tt.message)
		}
	}
	// The injected 502 is really served.
	if status, _, _ := getCreds(t, "GET", credsPath("acme", "alpha"), tokenA); status != 502 {
		t.Errorf("after control api_fail: status %d", status)
	}
	resp, err := http.Get(srv.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st ControlStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.API.Requests == 0 || st.API.ByStatus[502] == 0 {
		t.Errorf("stats %+v (%v)", st, err)
	}
}
