package enrich

import (
	"fmt"
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/phuslu/iploc"
)

// geo looks up where an IP address is: in a MaxMind-format database when
// one is open, else (or when it has no answer) in the embedded table.
type geo struct {
	db *maxminddb.Reader // nil: embedded country table only
}

// geoRecord is the part of a GeoIP2/GeoLite2 City or Country record the
// agent reports. Nested structs, not maps, so a lookup allocates only the
// strings it returns.
type geoRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Subdivisions []struct {
		Names struct {
			En string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	City struct {
		Names struct {
			En string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"city"`
}

func openGeo(path string) (*geo, error) {
	if path == "" {
		return &geo{}, nil
	}
	db, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("enrich: --geoip-db %s: %w (give a MaxMind-format .mmdb City or Country database, or leave it empty for countries from the built-in table)", path, err)
	}
	return &geo{db: db}, nil
}

// lookup returns ISO country code, region and city names; empty when
// unknown (private, reserved or unlisted addresses).
func (g *geo) lookup(ip netip.Addr) (country, region, city string) {
	if !ip.IsValid() {
		return "", "", ""
	}
	ip = ip.Unmap()
	if g.db != nil {
		var rec geoRecord
		if err := g.db.Lookup(ip).Decode(&rec); err == nil && rec.Country.ISOCode != "" {
			if len(rec.Subdivisions) > 0 {
				region = rec.Subdivisions[0].Names.En
			}
			return rec.Country.ISOCode, region, rec.City.Names.En
		}
	}
	if ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() {
		return "", "", ""
	}
	switch c := iploc.IPCountry(ip); c {
	case "", "ZZ", "XX":
		return "", "", ""
	default:
		return c, "", ""
	}
}

func (g *geo) dbType() string {
	if g.db == nil {
		return ""
	}
	return g.db.Metadata.DatabaseType
}

func (g *geo) close() error {
	if g.db == nil {
		return nil
	}
	if err := g.db.Close(); err != nil {
		return fmt.Errorf("enrich: close geo database: %w", err)
	}
	return nil
}
