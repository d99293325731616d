package creds

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	s := Secret(testSecret)
	c := Credentials{AccessKeyID: "AKIA1", SecretAccessKey: s, SessionToken: Secret(testSession)}
	var outs []string
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%10s", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c))
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j), s.String(), s.GoString())
	logger, buf := newLogger()
	logger.Info("x", "secret", s, "creds", c)
	jl := &logBuffer{}
	slog.New(slog.NewJSONHandler(jl, nil)).Info("x", "secret", s, "creds", c)
	outs = append(outs, buf.String(), jl.String())
	all := strings.Join(outs, "\n")
	assertNoSecrets(t, "printed secrets", all)
	if !strings.Contains(all, "REDACTED") {
		t.Errorf("no REDACTED marker in:\n%s", all)
	}
	if s.Reveal() != testSecret {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
	if Secret("").String() != "" {
		t.Errorf("empty secret prints %q", Secret("").String())
	}
}
