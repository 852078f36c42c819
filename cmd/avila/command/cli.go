package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"

	shared "github.com/avila-analytics/avila/internal/cli"
)

// Exit codes: 0 success, 1 the work failed, 2 the command line was wrong.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// cli holds what a verb may touch of the outside world, so tests run verbs
// in-process with their own output buffers and environment.
type cli struct {
	stdout, stderr io.Writer
	lookupEnv      shared.Env
}

func newCLI(stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) *cli {
	return &cli{stdout: stdout, stderr: stderr, lookupEnv: lookupEnv}
}

// command is one verb, e.g. "site create".
type command struct {
	name    string
	summary string
	// flags declares the verb's flags on fs and returns the function that
	// runs the verb once they are parsed.
	flags func(c *cli, fs *shared.FlagSet) func(ctx context.Context) error
	// args names the positional arguments the verb takes after its flags
	// ("FILE..."), which it reads with fs.Args(); "" for none.
	args string
}

// commands lists the verbs in the order usage shows them.
func commands() []command {
	return []command{
		demoCommand(),
		migrateCommand(),
		rebuildCommand(),
		siteCreateCommand(),
		siteListCommand(),
		siteUpdateCommand(),
		currencySetRateCommand(),
		currencyListCommand(),
		siteRotateIdentityCommand(),
		keyCreateCommand(),
		keyListCommand(),
		keyRevokeCommand(),
		certsInitCommand(),
		certsIssueCommand(),
		clusterStatusCommand(),
		reportCommand(),
		importCommand(),
		deadLettersListCommand(),
		deadLettersReplayCommand(),
		stagedListCommand(),
		stagedRequeueCommand(),
		retentionRunCommand(),
		gdprExportCommand(),
		gdprEraseCommand(),
		gdprDecryptCommand(),
		auditListCommand(),
		auditVerifyCommand(),
	}
}

// errUsage marks a command line mistake; the exit code is then 2.
var errUsage = errors.New("usage")

// usageError is a command line mistake to report in a sentence that names
// the flag and says what it wants.
type usageError struct{ msg string }

func (e usageError) Error() string        { return e.msg }
func (e usageError) Is(target error) bool { return target == errUsage }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func (c *cli) run(args []string) int {
	if len(args) == 0 {
		c.usage(c.stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return c.help(args[1:])
	}
	cmd, rest, ok := lookup(args)
	if !ok {
		c.unknown("avila", args)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := c.runCommand(ctx, cmd, rest)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		if msg := err.Error(); msg != errUsage.Error() {
			fmt.Fprintf(c.stderr, "avila %s: %s\n", cmd.name, msg)
		}
		return exitUsage
	default:
		fmt.Fprintf(c.stderr, "avila %s: %v\n", cmd.name, err)
		return exitError
	}
}

func (c *cli) runCommand(ctx context.Context, cmd command, args []string) error {
	fs := c.flagSet(cmd)
	run := cmd.flags(c, fs)
	if err := fs.Parse(args, c.lookupEnv); err != nil {
		var envErr *shared.EnvError
		switch {
		case errors.Is(err, flag.ErrHelp):
			return nil // -h: the usage was asked for and printed
		case errors.As(err, &envErr):
			return usageError{envErr.Error()}
		}
		return errUsage // flag has printed the problem and the usage
	}
	if fs.NArg() > 0 && cmd.args == "" {
		fmt.Fprintf(c.stderr, "avila %s: unexpected arguments %q\n", cmd.name, fs.Args())
		fs.Usage()
		return errUsage
	}
	return run(ctx)
}

func (c *cli) flagSet(cmd command) *shared.FlagSet {
	fs := shared.NewFlagSet("avila " + cmd.name)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: avila %s [flags]%s\n\n%s\n\nFlags:\n", cmd.name, strings.TrimRight(" "+cmd.args, " "), cmd.summary)
		fs.PrintDefaults()
	}
	return fs
}

// lookup finds the verb args start with: the longest name made of its
// leading words ("site create" before "site").
func lookup(args []string) (command, []string, bool) {
	for _, cmd := range commands() {
		words := strings.Fields(cmd.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == cmd.name {
			return cmd, args[len(words):], true
		}
	}
	return command{}, nil, false
}

// group returns the verbs whose name starts with the word group ("site":
// site create, site list, site update); none when group is no verb's
// first word or is a verb itself.
func group(name string) []command {
	var verbs []command
	for _, cmd := range commands() {
		if first, _, found := strings.Cut(cmd.name, " "); found && first == name {
			verbs = append(verbs, cmd)
		}
	}
	return verbs
}

// help prints usage: the verb list, a group's verbs, or one verb's flags.
func (c *cli) help(args []string) int {
	if len(args) == 0 {
		c.usage(c.stdout)
		return exitOK
	}
	cmd, rest, ok := lookup(args)
	if !ok || len(rest) > 0 {
		if verbs := group(args[0]); len(verbs) > 0 && len(args) == 1 {
			c.groupUsage(c.stdout, args[0], verbs)
			return exitOK
		}
		c.unknown("avila help", args)
		return exitUsage
	}
	fs := c.flagSet(cmd)
	cmd.flags(c, fs)
	fs.SetOutput(c.stdout)
	fs.Usage()
	return exitOK
}

// unknown reports a command line that names no verb, and lists the verbs of
// the group it starts with, or all of them.
func (c *cli) unknown(prefix string, args []string) {
	if verbs := group(args[0]); len(verbs) > 0 {
		if len(args) == 1 {
			fmt.Fprintf(c.stderr, "%s: %q needs a verb\n\n", prefix, args[0])
		} else {
			fmt.Fprintf(c.stderr, "%s: unknown command %q\n\n", prefix, strings.Join(args[:2], " "))
		}
		c.groupUsage(c.stderr, args[0], verbs)
		return
	}
	fmt.Fprintf(c.stderr, "%s: unknown command %q\n\n", prefix, args[0])
	c.usage(c.stderr)
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, "Usage: avila <command> [flags]\n\nCommands:\n")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-19s %s\n", cmd.name, firstLine(cmd.summary))
	}
	fmt.Fprint(w, "\nRun 'avila help <command>' for its flags, 'avila help site' (or key, certs, cluster, gdpr, audit) for a group's\n"+
		"commands. Every flag has an AVILA_<FLAG> environment fallback (--data-dir: AVILA_DATA_DIR);\n"+
		"--database-url also falls back to DATABASE_URL.\n")
}

func (c *cli) groupUsage(w io.Writer, name string, verbs []command) {
	fmt.Fprintf(w, "Usage: avila %s <command> [flags]\n\nCommands:\n", name)
	for _, cmd := range verbs {
		fmt.Fprintf(w, "  %-19s %s\n", cmd.name, firstLine(cmd.summary))
	}
	fmt.Fprintf(w, "\nRun 'avila help %s' for its flags.\n", verbs[0].name)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Main runs the avila command line: args without the program name, env to
// look up environment variables (os.LookupEnv). It returns the exit code.
func Main(args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	return newCLI(stdout, stderr, env).run(args)
}

// Verb is one avila verb with its flags declared, for documentation and
// tests that enumerate flags without running anything.
type Verb struct {
	Name    string // e.g. "site create"
	Summary string // what `avila help NAME` prints above the flags
	Flags   *shared.FlagSet
}

// Verbs returns every verb in the order usage lists them.
func Verbs() []Verb {
	c := newCLI(io.Discard, io.Discard, func(string) (string, bool) { return "", false })
	var out []Verb
	for _, cmd := range commands() {
		fs := c.flagSet(cmd)
		cmd.flags(c, fs)
		out = append(out, Verb{Name: cmd.name, Summary: cmd.summary, Flags: fs})
	}
	return out
}
