package bench

import (
	"fmt"

	"github.com/avila-analytics/avila/internal/apptest"
)

// process is a binary of the pipeline started by the harness: stderr to a
// log file, its first stdout line the JSON ready object (internal/apptest,
// shared with the end-to-end tests).
type process struct {
	*apptest.Process
}

// startProcess runs bin and waits for its ready line.
func startProcess(name, bin, logPath string, args ...string) (*process, error) {
	p, err := apptest.Start(apptest.Options{Name: name, Bin: bin, Args: args, LogPath: logPath})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return &process{p}, nil
}

func (p *process) pid() int { return p.Pid() }
