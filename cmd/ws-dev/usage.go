package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// usage is the help of ws-dev as a whole: "ws-dev -h", "--help" or "help"
// print it, followed by serve's flags, on stdout.
const usage = `Usage: ws-dev [COMMAND] [FLAGS] [ARGS]

ws-dev runs a local workspace for trying and testing mount-ws: an S3 server
and a workspace API emulator on loopback ports, seeded with demo data.

Commands:
  serve   run the local workspace until Ctrl-C (the default: "ws-dev" alone)
  fault   inject a fault into the running ws-dev ("ws-dev fault -h" lists them)
  stats   print what the running ws-dev served, as a table (-json: as JSON)
  help    print this help

fault and stats find the running ws-dev through its data dir: give them the
same -data as the server (default .ws-dev).
`

// parseFlags parses args into fl, whose help is head followed by its flags.
// -h or --help prints that help on stdout and returns flag.ErrHelp, which
// run turns into success; a bad flag prints it on stderr and returns the
// error.
func parseFlags(fl *flag.FlagSet, args []string, head string, stdout, stderr io.Writer) error {
	fl.SetOutput(io.Discard) // the error is returned; help is printed below
	fl.Usage = func() {}
	err := fl.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printHelp(stdout, fl, head)
	case err != nil:
		printHelp(stderr, fl, head)
	}
	return err
}

func printHelp(w io.Writer, fl *flag.FlagSet, head string) {
	fmt.Fprintf(w, "%s\nFlags of %s:\n", head, fl.Name())
	fl.SetOutput(w)
	fl.PrintDefaults()
	fl.SetOutput(io.Discard)
}
