package redis

import (
	"context"
	"fmt"
	"strconv"

	"github.com/vmihailenco/msgpack/v5"
)

// Forget removes the cells of visitors (an erased data subject's keys) from
// a site's realtime window in this node's memory, their latest active
// events, and the devices' sessions that are theirs (realtime_users.go).
// Other visitors' counts stay.
func (r *Realtime) Forget(_ context.Context, site uint32, visitors []uint64) error {
	gone := setOf(visitors)
	r.forget(site, gone)
	r.forgetDevices(site, gone)
	r.notify(site)
	return nil
}

// Forget removes the cells of visitors from a site's realtime window in
// this node's memory and in Redis. Each touched minute's version moves, so
// every node reads it again; the minute's visitor sketch (realtime:users)
// is rewritten from the cells that remain. The visitors' devices'
// sessions and latest active events go too, in memory and in Redis.
func (r *RedisRealtime) Forget(ctx context.Context, site uint32, visitors []uint64) error {
	gone := setOf(visitors)
	now := unixMinute(r.mem.opts.Now())
	r.mem.forget(site, gone)
	r.mem.forgetDevices(site, gone)
	if err := r.forgetRedis(ctx, site, now, gone); err != nil {
		return err
	}
	if err := r.forgetDevicesRedis(ctx, site, gone); err != nil {
		return err
	}
	r.activeCache.drop(site)
	members := make([]any, 0, len(gone))
	for v := range gone {
		members = append(members, strconv.FormatUint(v, 16))
	}
	if len(members) > 0 {
		if err := r.client.ZRem(ctx, r.ActiveKey(site), members...).Err(); err != nil {
			return fmt.Errorf("realtime: forget in %s: %w", r.ActiveKey(site), err)
		}
	}
	r.mem.notify(site)
	return nil
}

func setOf(visitors []uint64) map[uint64]bool {
	gone := make(map[uint64]bool, len(visitors))
	for _, v := range visitors {
		gone[v] = true
	}
	return gone
}

// forget removes gone's cells from site's minutes in memory.
func (r *Realtime) forget(site uint32, gone map[uint64]bool) {
	r.mu.Lock()
	if rg := r.sites[site]; rg != nil {
		for v := range gone {
			delete(rg.active, v)
		}
		for i := range rg.slots {
			sl := &rg.slots[i]
			if sl.cells.drop(gone) {
				sl.version++
				sl.full = nil // the minute has room again
			}
		}
	}
	r.mu.Unlock()
}

func (r *RedisRealtime) forgetRedis(ctx context.Context, site uint32, now int64, gone map[uint64]bool) error {
	for i := range RealtimeWindow + 1 { // the window, and the minute that may just have begun
		m := now - int64(i) + 1
		ek, uk := r.EventsKey(site, m), r.UsersKey(site, m)
		fields, err := r.client.HGetAll(ctx, ek).Result()
		if err != nil {
			return fmt.Errorf("realtime: forget in %s: %w", ek, err)
		}
		var drop []string
		keep := map[uint64]bool{}
		for f := range fields {
			if f == versionField {
				continue
			}
			var c Cell
			if err := msgpack.Unmarshal([]byte(f), &c); err != nil {
				return fmt.Errorf("realtime: forget in %s: decode cell: %w", ek, err)
			}
			if gone[c.Visitor] {
				drop = append(drop, f)
			} else {
				keep[c.Visitor] = true
			}
		}
		if len(drop) == 0 {
			continue
		}
		pipe := r.client.TxPipeline()
		pipe.HDel(ctx, ek, drop...)
		pipe.HIncrBy(ctx, ek, versionField, 1)
		pipe.Del(ctx, uk)
		if len(keep) > 0 {
			vs := make([]any, 0, len(keep))
			for v := range keep {
				vs = append(vs, strconv.FormatUint(v, 16))
			}
			pipe.PFAdd(ctx, uk, vs...)
			pipe.Expire(ctx, uk, realtimeTTL)
		}
		pipe.Publish(ctx, r.channel, strconv.FormatUint(uint64(site), 10))
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("realtime: forget in %s: %w", ek, err)
		}
	}
	return nil
}
