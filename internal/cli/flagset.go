package cli

import (
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// FlagSet is a flag.FlagSet whose every flag falls back to environment
// variables: AVILA_<NAME> unless SetEnv names others. Declare flags on the
// embedded flag.FlagSet as usual; Parse then fills each flag the command
// line left out from the first of its variables that is set, through the
// flag's own Set, so a bad value is an error naming the variable and the
// flag counts as given (flag.FlagSet.Visit sees it). Usage texts need not
// mention the variables: PrintDefaults adds them.
type FlagSet struct {
	*flag.FlagSet
	env map[string][]string // flag name → variables, first set wins; default AVILA_<NAME>
}

// NewFlagSet makes an empty flag set that returns parse errors
// (flag.ContinueOnError) and prints its usage, on -h or a bad flag, as
// "Usage of NAME:" and PrintDefaults; replace Usage for more.
func NewFlagSet(name string) *FlagSet {
	fs := &FlagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: map[string][]string{}}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
		fs.PrintDefaults()
	}
	return fs
}

// EnvVar is the environment variable that backs flag name by default:
// --data-dir ↔ AVILA_DATA_DIR.
func EnvVar(name string) string {
	return "AVILA_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// SetEnv makes flag name fall back to the variables vars, the first one set
// winning, instead of AVILA_<NAME> alone. vars should include EnvVar(name):
// a flag without its own variable breaks the rule users rely on.
func (fs *FlagSet) SetEnv(name string, vars ...string) {
	fs.env[name] = vars
}

// EnvVars returns the variables flag name falls back to, first set wins.
func (fs *FlagSet) EnvVars(name string) []string {
	if vars, ok := fs.env[name]; ok {
		return vars
	}
	return []string{EnvVar(name)}
}

// Parse parses args, then sets every flag they did not give from its
// environment variables, looked up in env.
func (fs *FlagSet) Parse(args []string, env Env) error {
	if err := fs.FlagSet.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		for _, name := range fs.EnvVars(f.Name) {
			v, ok := env(name)
			if !ok {
				continue
			}
			if !isTextFlag(f) {
				v = strings.TrimSpace(v)
			}
			if serr := fs.Set(f.Name, v); serr != nil {
				err = &EnvError{Var: name, Value: v, Flag: f.Name, Want: want(f, serr)}
			}
			return
		}
	})
	return err
}

// EnvError is an environment variable whose value its flag refuses.
type EnvError struct {
	Var, Value string // the variable and its value
	Flag       string // the flag it sets
	Want       string // what the flag takes
}

func (e *EnvError) Error() string {
	return fmt.Sprintf("%s=%q: %s (it sets --%s)", e.Var, e.Value, e.Want, e.Flag)
}

// PrintDefaults writes every flag's usage as flag.PrintDefaults does (a
// back-quoted word in the usage names the value), followed by its
// environment variables and non-zero default: "(env AVILA_X; default 7)".
func (fs *FlagSet) PrintDefaults() {
	w := fs.Output()
	fs.VisitAll(func(f *flag.Flag) {
		placeholder, usage := flag.UnquoteUsage(f)
		line := "  -" + f.Name
		if placeholder != "" {
			line += " " + placeholder
		}
		note := "env " + strings.Join(fs.EnvVars(f.Name), ", then ")
		if def := Default(f); def != "" {
			note += "; default " + def
		}
		usage = strings.ReplaceAll(usage, "\n", "\n    \t")
		fmt.Fprintf(w, "%s\n    \t%s (%s)\n", line, usage, note)
	})
}

// Default is f's default as help shows it: quoted for text flags, empty
// when it is the zero value of the flag's type (nothing worth naming).
func Default(f *flag.Flag) string {
	if isZeroValue(f) {
		return ""
	}
	if isTextFlag(f) {
		return strconv.Quote(f.DefValue)
	}
	return f.DefValue
}

// isTextFlag reports whether f holds free text (a flag.String).
func isTextFlag(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, isText := g.Get().(string)
	return isText
}

// want says what a flag of f's type takes, for an environment variable
// whose value it refused with err.
func want(f *flag.Flag, err error) string {
	if g, ok := f.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case bool:
			return "want true or false"
		case int, int64, uint, uint64:
			return "want an integer"
		case float64:
			return "want a number"
		case time.Duration:
			return "want a duration such as 30s or 5m"
		}
	}
	return err.Error()
}

// isZeroValue reports whether f's default is its type's zero value, as
// flag.PrintDefaults decides it.
func isZeroValue(f *flag.Flag) (zero bool) {
	defer func() {
		if recover() != nil { // a Value whose zero String panics
			zero = f.DefValue == ""
		}
	}()
	t := reflect.TypeOf(f.Value)
	var z reflect.Value
	if t.Kind() == reflect.Pointer {
		z = reflect.New(t.Elem())
	} else {
		z = reflect.Zero(t)
	}
	v, ok := z.Interface().(flag.Value)
	if !ok {
		return f.DefValue == ""
	}
	return f.DefValue == v.String()
}
