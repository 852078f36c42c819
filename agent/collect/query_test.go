package collect

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// sameAsNetURL fails unless parseQuery and url.ParseQuery agree on q: the
// same error text, and the same values when there is no error, with the
// shape counting the keys that have a dot and the item keys.
func sameAsNetURL(t *testing.T, q string) {
	t.Helper()
	got, shape, gotErr := parseQuery(q)
	want, wantErr := url.ParseQuery(q)
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("parseQuery(%q) error = %v, url.ParseQuery says %v", q, gotErr, wantErr)
	}
	if gotErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("parseQuery(%q) = %v, url.ParseQuery says %v", q, got, want)
	}
	var wantShape queryShape
	for k := range want {
		if strings.Contains(k, ".") {
			wantShape.dotted++
		}
		if len(k) >= 3 && strings.HasPrefix(k, "pr") && strings.ContainsAny(k[2:3], "123456789") {
			wantShape.items++
		}
	}
	if gotErr == nil && shape != wantShape {
		t.Fatalf("parseQuery(%q) has shape %+v, want %+v", q, shape, wantShape)
	}
}

func TestParseQueryMatchesNetURL(t *testing.T) {
	for _, q := range []string{
		"",
		"&&&",
		"v=2&tid=G-1&en=page_view",
		pageView,
		// A repeated key appends to its own values, never over the next key's.
		"a=1&b=2&a=3&c=4&a=5",
		"a&b=&=c&==&a",
		"dl=https%3A%2F%2Fex.com%2F%3Fq%3D1&dt=A+B%20C",
		"ok=1&bad=%zz&worse=%",
		"k%zz=1&ok=2",
		"a=1;b=2&c=3",
		"a=%zz&b=1;c&d=%",
		"a=1&b=2;c=3&d=4;e",
		// Item keys: pr and a digit from 1, each counted once.
		"pr1=id1~nmA&pr2=id2&pr=3&prx=1&pr0=1&pr10=x&pr1=dup&ep.x=1&ep.x=2",
		strings.Repeat("p=1&", 200),
		strings.Repeat("&", maxQueryParams-1) + "a=1",
		strings.Repeat("&", maxQueryParams) + "a=1",
	} {
		sameAsNetURL(t, q)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, q := range []string{pageView, "a=1&a=2&b=%zz;", "x=%41+%42&y"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) { sameAsNetURL(t, q) })
}
