package creds

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Environment variables of mount-ws: ResolveTokenSource reads TokenEnv;
// APIURLEnv is for the command line layer to read.
const (
	// TokenEnv holds the API token. There is deliberately no flag for the
	// token itself: it would show in ps(1).
	TokenEnv = "WS_TOKEN"
	// APIURLEnv holds the workspace API base URL.
	APIURLEnv = "WS_API_URL"
)

// maxTokenFile bounds how much of a token file is read.
const maxTokenFile = 64 << 10

// A TokenSource supplies the bearer token for each request to the API.
// Token is called before every fetch, so a source may return a different
// (rotated) token each time. Implementations must be safe for concurrent use.
type TokenSource interface {
	// Token returns the current token. Errors wrap ErrToken and name the
	// source, never the token.
	Token() (Secret, error)
	// String says where the token comes from, e.g. "environment variable
	// WS_TOKEN", for messages such as "the API rejected the token from ...".
	String() string
}

// ResolveTokenSource picks the token source for a mount:
//
//  1. tokenFile, when set (an explicit --token-file wins);
//  2. the WS_TOKEN environment variable, read through getenv;
//  3. the default token file, DefaultTokenFile().
//
// It does not read the file: a missing file is reported at the first fetch,
// which names the file and how to provide a token.
func ResolveTokenSource(getenv func(string) string, tokenFile string, logger *slog.Logger) (TokenSource, error) {
	if tokenFile != "" {
		return FileToken(tokenFile, logger), nil
	}
	if tok := getenv(TokenEnv); tok != "" {
		return StaticToken(Secret(tok), "environment variable "+TokenEnv), nil
	}
	path, err := DefaultTokenFile()
	if err != nil {
		return nil, fmt.Errorf("no token: %s is not set and %w: %w", TokenEnv, err, ErrToken)
	}
	return FileToken(path, logger), nil
}

// DefaultTokenFile returns the token file used when neither --token-file
// nor WS_TOKEN is given: $XDG_CONFIG_HOME/mount-ws/token, usually
// ~/.config/mount-ws/token.
func DefaultTokenFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the default token file: %w", err)
	}
	return filepath.Join(dir, "mount-ws", "token"), nil
}

// StaticToken returns a TokenSource that always yields tok; source describes
// where it came from ("environment variable WS_TOKEN").
func StaticToken(tok Secret, source string) TokenSource {
	return staticToken{tok: tok, source: source}
}

type staticToken struct {
	tok    Secret
	source string
}

func (s staticToken) Token() (Secret, error) { return cleanToken(string(s.tok), s.source) }
func (s staticToken) String() string         { return s.source }

// FileToken returns a TokenSource that reads path at every call, so a token
// rotated on disk takes effect at the next fetch without a remount. Leading
// and trailing white space is ignored. A file readable by group or others
// is used, with a warning logged once per path and mode.
func FileToken(path string, logger *slog.Logger) TokenSource {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &fileToken{path: path, log: logger}
}

type fileToken struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	warned fs.FileMode // guarded by mu: the mode last warned about
}

func (f *fileToken) String() string { return "token file " + f.path }

func (f *fileToken) Token() (Secret, error) {
	file, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("token file %s does not exist; write the workspace API token to it (mode 0600) or set %s: %w", f.path, TokenEnv, ErrToken)
	}
	if err != nil {
		return "", fmt.Errorf("open token file: %w: %w", err, ErrToken)
	}
	defer file.Close()
	if st, err := file.Stat(); err == nil {
		if !st.Mode().IsRegular() {
			return "", fmt.Errorf("token file %s is not a regular file: %w", f.path, ErrToken)
		}
		f.checkMode(st.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(file, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("read token file %s: %w", f.path, errors.Join(ErrToken, err))
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("token file %s is larger than %d bytes; is it the right file? %w", f.path, maxTokenFile, ErrToken)
	}
	return cleanToken(string(b), f.String())
}

func (f *fileToken) checkMode(m fs.FileMode) {
	perm := m.Perm()
	f.mu.Lock()
	defer f.mu.Unlock()
	if perm&0o077 == 0 || perm == f.warned {
		return
	}
	f.warned = perm
	f.log.Warn("token file is accessible by group or others; restrict it with chmod 600",
		"path", f.path, "mode", fmt.Sprintf("%#o", perm))
}

// cleanToken trims white space and refuses tokens that could not be sent
// as a header value. Messages name the source, never the token.
func cleanToken(tok, source string) (Secret, error) {
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("the token from %s is empty: %w", source, ErrToken)
	}
	if strings.IndexFunc(tok, func(r rune) bool { return r < 0x21 || r == 0x7f }) >= 0 {
		return "", fmt.Errorf("the token from %s contains white space or control characters; it must be a single line: %w", source, ErrToken)
	}
	return Secret(tok), nil
}
