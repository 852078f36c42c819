package query

import (
	"context"
	"errors"
	"github.com/avila-analytics/avila/query/plan"
	"net/http"
	"time"
)

// defaultRecheck is SocketOptions.Recheck when zero.
const defaultRecheck = 2 * time.Second

// watchKey checks key's access to property id every Recheck while ctx
// lasts, and sends the close reason once the key is revoked or no longer
// reaches the property. A check that fails for another reason (the
// database is down) keeps the socket open: it was authorized, and the next
// check decides.
func (s *RealtimeSocket) watchKey(ctx context.Context, key string, id uint32) <-chan string {
	out := make(chan string, 1)
	go func() {
		t := time.NewTicker(s.recheck)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cctx, cancel := context.WithTimeout(ctx, s.recheck)
			err := s.h.authorizeKey(cctx, key, id)
			cancel()
			var ae *plan.Error
			if errors.As(err, &ae) && (ae.Code == http.StatusUnauthorized || ae.Code == http.StatusForbidden) {
				out <- "API key revoked or no longer allowed on this property"
				return
			}
			if err != nil && ctx.Err() == nil {
				s.h.log.WarnContext(ctx, "realtime socket: recheck of the API key failed; keeping the socket", "site", id, "err", err)
			}
		}
	}()
	return out
}
