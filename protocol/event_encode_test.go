package protocol

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"
)

// AppendEvent writes exactly what msgpack.Marshal writes for an Event
// (maps of at most one entry, whose order is fixed), and whatever it
// writes decodes to the same event.
func TestAppendEventMatchesMsgpack(t *testing.T) {
	f := func(e Event) {
		t.Helper()
		got := AppendEvent(nil, &e)
		if mapsOfOne(&e) {
			want, err := msgpack.Marshal(&e)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendEvent(%+v)\n got % x\nwant % x", e, got, want)
			}
		}
		var back Event
		if err := DecodeEvent(got, &back); err != nil {
			t.Fatalf("decode %+v: %v", e, err)
		}
		if d := cmp.Diff(e, back); d != "" {
			t.Fatalf("round trip (-sent +decoded):\n%s", d)
		}
	}
	f(Event{})
	f(Event{Site: math.MaxUint32, TimeMicros: -1, Name: "page_view", Visitor: math.MaxUint64})
	f(Event{Site: 7, TimeMicros: 1_718_000_000_000_000, Name: "page_view", Visitor: 42, User: 9, Client: 11, SessionID: 1_718_000_000,
		SessionNum: -3, Flags: FlagSessionStart | FlagEngaged, EngageMs: 1520, Host: "www.example.com",
		Path: "/blog/ga4?utm_source=x", Title: strings.Repeat("t", 31), Referrer: strings.Repeat("r", 32),
		Language: "en-us", Screen: "1920x1080", Country: "DE", Region: "Berlin", City: "Berlin", Browser: "Chrome",
		BrowserVer: "126", OS: "Windows", Device: "desktop",
		Params: map[string]string{"k": strings.Repeat("v", 255)}, NumParams: map[string]float64{"value": 3.25},
		UserProps: map[string]string{"plan": strings.Repeat("p", 256)}})
	f(Event{Name: strings.Repeat("n", 65535), Path: strings.Repeat("p", 65536), NumParams: map[string]float64{"nan-free": -0.5}})
	many := map[string]string{}
	nums := map[string]float64{}
	for i := range 20 { // beyond a fixmap's 15 entries
		many[strings.Repeat("k", i+1)] = strings.Repeat("v", i)
		nums[strings.Repeat("n", i+1)] = float64(i) / 3
	}
	f(Event{Name: "many", Params: many, NumParams: nums, UserProps: many})

	rng := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		if rng.IntN(3) == 0 {
			return ""
		}
		return strings.Repeat("x", rng.IntN(300))
	}
	for range 500 {
		e := Event{Site: rng.Uint32(), TimeMicros: rng.Int64() - math.MaxInt64/2, Name: str(), Visitor: rng.Uint64(),
			Host: str(), Path: str(), Title: str(), Referrer: str(), Language: str(), City: str(), Device: str()}
		if rng.IntN(2) == 0 {
			e.User, e.SessionID, e.SessionNum, e.Flags, e.EngageMs = rng.Uint64(), -rng.Int64(), rng.Int32(), uint8(rng.Uint32()), rng.Int64()
			e.Client, e.Screen, e.Country, e.Region, e.Browser, e.BrowserVer, e.OS = rng.Uint64(), str(), str(), str(), str(), str(), str()
			e.Currency, e.Value, e.Tax, e.Shipping, e.TransactionID = str(), rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), str()
		}
		if rng.IntN(3) == 0 {
			e.Params = map[string]string{str(): str()}
			e.NumParams = map[string]float64{str(): rng.NormFloat64()}
		}
		f(e)
	}
}

// everyItemField is an Item with every field set to a distinct non-zero value.
func everyItemField(t *testing.T) Item {
	var it Item
	v := reflect.ValueOf(&it).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("item" + strconv.Itoa(i))
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.5)
		case reflect.Int64:
			f.SetInt(int64(i + 1))
		default:
			t.Fatalf("Item.%s: kind %s; teach appendItem and this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	return it
}

func TestAppendEventItems(t *testing.T) {
	items := make([]Item, 200) // beyond a fixarray's 15 entries
	for i := range items {
		items[i] = Item{ID: "SKU_" + strconv.Itoa(i), Price: float64(i) / 4, Quantity: int64(i % 3)}
	}
	e := Event{Site: 1, Name: "purchase", Currency: "EUR", Value: 12.5, Tax: -1, Shipping: 3, TransactionID: "T-1", Items: items}
	want, err := msgpack.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	got := AppendEvent(nil, &e)
	if !bytes.Equal(got, want) {
		t.Fatalf("items:\n got % x\nwant % x", got[:64], want[:64])
	}
	var back Event
	if err := DecodeEvent(got, &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(e, back); d != "" {
		t.Fatalf("round trip (-sent +decoded):\n%s", d)
	}
}

func mapsOfOne(e *Event) bool {
	return len(e.Params) <= 1 && len(e.NumParams) <= 1 && len(e.UserProps) <= 1
}

func BenchmarkEncodeEvent(b *testing.B) {
	e := Event{Site: 7, TimeMicros: 1_718_000_000_000_000, Name: "page_view", Visitor: 42, SessionID: 1_718_000_000,
		SessionNum: 3, Flags: FlagSessionStart, EngageMs: 1520, Host: "www.bench.example", Path: "/blog/ga4-wire-format?utm_source=newsletter",
		Title: "The GA4 wire format | Bench Example blog", Referrer: "https://www.google.com/", Language: "en-us",
		Screen: "1920x1080", Country: "DE", Browser: "Chrome", BrowserVer: "126", OS: "Windows", Device: "desktop"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeEvent(&e); err != nil {
			b.Fatal(err)
		}
	}
}

// Every field of Event, each set to a non-zero value, comes out as
// msgpack.Marshal writes it: a field added to Event but not to AppendEvent
// fails here.
func TestAppendEventCoversEveryField(t *testing.T) {
	var e Event
	v := reflect.ValueOf(&e).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x" + strconv.Itoa(i))
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(uint64(i + 1))
		case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.SetInt(-int64(i + 1))
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.25)
		case reflect.Slice:
			if f.Type() != reflect.TypeFor[[]Item]() {
				t.Fatalf("Event.%s: slice of %s; teach AppendEvent and this test", v.Type().Field(i).Name, f.Type().Elem())
			}
			f.Set(reflect.ValueOf([]Item{everyItemField(t), {Name: "second"}}))
		case reflect.Map:
			m := reflect.MakeMap(f.Type())
			elem := reflect.New(f.Type().Elem()).Elem()
			switch elem.Kind() {
			case reflect.String:
				elem.SetString("v")
			case reflect.Float64:
				elem.SetFloat(1.5)
			default:
				t.Fatalf("Event.%s: map of %s; teach AppendEvent and this test", v.Type().Field(i).Name, elem.Kind())
			}
			m.SetMapIndex(reflect.ValueOf("k"), elem)
			f.Set(m)
		default:
			t.Fatalf("Event.%s: kind %s; teach AppendEvent and this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	want, err := msgpack.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendEvent(nil, &e); !bytes.Equal(got, want) {
		t.Fatalf("every field set:\n got % x\nwant % x", got, want)
	}
}
