// Go runtime of test_parsers.py (stdlib only): JSON lines in, JSON lines out (protocol in
// ../py_views.py). View go.stdlib:
//   - JSON bodies: encoding/json into a struct built at run time with reflect.StructOf, one
//     field per signed key carrying the json tag of that key (interface{} fields, so the JSON
//     type is kept). Like a real Go backend, the decoder matches keys case-insensitively (and
//     with Unicode simple folding: "ſ" is "s"), later members overwrite earlier ones. "get" is
//     read from a struct with only that key's field (a backend that knows just that field);
//     "params" from a map[string]interface{} decode.
//   - form bodies and queries: url.ParseQuery (r.FormValue-style Get: first value).
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

var errUnnameable = errors.New("key not expressible as a struct tag")

type request struct {
	ID      int         `json:"id"`
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Headers [][2]string `json:"headers"`
	Body    string      `json:"body"`
	Keys    []string    `json:"keys"`
}

func typed(v interface{}) []string {
	switch x := v.(type) {
	case nil:
		return []string{"", "null"}
	case bool:
		if x {
			return []string{"true", "bool"}
		}
		return []string{"false", "bool"}
	case string:
		return []string{x, "string"}
	case float64:
		return []string{strconv.FormatFloat(x, 'g', -1, 64), "number"}
	case []interface{}:
		b, _ := json.Marshal(x)
		return []string{string(b), "array"}
	default:
		b, _ := json.Marshal(x)
		return []string{string(b), "object"}
	}
}

func header(r *request, name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

// structFor builds struct{ F0 interface{} `json:"k0"`; ... } for the given keys.
func structFor(keys []string) reflect.Type {
	fields := make([]reflect.StructField, 0, len(keys))
	for i, k := range keys {
		fields = append(fields, reflect.StructField{
			Name: fmt.Sprintf("F%d", i),
			Type: reflect.TypeOf((*interface{})(nil)).Elem(),
			Tag:  reflect.StructTag(fmt.Sprintf("json:%s", strconv.Quote(k))),
		})
	}
	return reflect.StructOf(fields)
}

// decodeField: what a backend whose struct has exactly the field `key` reads (nil, false if unset).
func decodeField(body []byte, key string) (interface{}, bool, error) {
	if !nameable(key) {
		return nil, false, errUnnameable
	}
	v := reflect.New(structFor([]string{key}))
	if err := json.Unmarshal(body, v.Interface()); err != nil {
		return nil, false, err
	}
	f := v.Elem().Field(0)
	if f.IsNil() {
		// An explicit null leaves an interface{} field nil too: tell them apart by presence.
		var m map[string]json.RawMessage
		_ = json.Unmarshal(body, &m)
		for k, raw := range m {
			if strings.EqualFold(k, key) && string(raw) == "null" {
				return nil, true, nil
			}
		}
		return nil, false, nil
	}
	return f.Interface(), true, nil
}

// nameable: encoding/json itself uses `key` as the field's name (it ignores a tag it finds
// invalid, e.g. one with a combining mark, an emoji or a backslash, and falls back to "F0").
func nameable(key string) bool {
	if strings.ContainsAny(key, ",\"") || key == "-" || key == "" {
		return false
	}
	v := reflect.New(structFor([]string{key})).Elem()
	v.Field(0).Set(reflect.ValueOf(1))
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return false
	}
	var m map[string]interface{}
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	_, ok := m[key]
	return ok
}

func queryPairs(raw string) [][]string {
	q, _ := url.ParseQuery(raw) // net/http's FormValue ignores the error too
	ks := make([]string, 0, len(q))
	for k := range q {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	out := [][]string{}
	for _, k := range ks {
		for _, v := range q[k] {
			out = append(out, []string{k, v})
		}
	}
	return out
}

func view(r *request, body []byte) (map[string]interface{}, error) {
	rawQuery := ""
	if i := strings.IndexByte(r.Path, '?'); i >= 0 {
		rawQuery = r.Path[i+1:]
	}
	ct := strings.ToLower(header(r, "content-type"))
	params := [][]string{}
	get := map[string]interface{}{}
	switch {
	case strings.Contains(ct, "json"):
		// The whole-schema struct must decode too (one struct with every signed key).
		all := reflect.New(structFor(nonTagKeys(r.Keys)))
		if err := json.Unmarshal(body, all.Interface()); err != nil {
			return nil, err
		}
		var m map[string]interface{}
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, err
		}
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			params = append(params, append([]string{k}, typed(m[k])...))
		}
		for _, k := range r.Keys {
			v, ok, err := decodeField(body, k)
			if err == errUnnameable {
				get[k] = []string{"", "unnameable"} // no Go struct can have this field
				continue
			}
			if err != nil {
				return nil, err
			}
			if ok {
				get[k] = typed(v)
			} else {
				get[k] = nil
			}
		}
	case strings.Contains(ct, "x-www-form-urlencoded"):
		q, _ := url.ParseQuery(string(body))
		for _, p := range queryPairs(string(body)) {
			params = append(params, []string{p[0], p[1], "string"})
		}
		for _, k := range r.Keys {
			if vs, ok := q[k]; ok && len(vs) > 0 {
				get[k] = []string{vs[0], "string"}
			} else {
				get[k] = nil
			}
		}
	default:
		return nil, fmt.Errorf("no body parser for this content type")
	}
	return map[string]interface{}{"params": params, "get": get, "query": queryPairs(rawQuery)}, nil
}

func nonTagKeys(keys []string) []string {
	out := []string{}
	for _, k := range keys {
		if nameable(k) {
			out = append(out, k)
		}
	}
	return out
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		line := in.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var r request
		if err := json.Unmarshal(line, &r); err != nil {
			fmt.Fprintln(os.Stderr, "bad input line:", err)
			os.Exit(2)
		}
		body, err := base64.StdEncoding.DecodeString(r.Body)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad base64:", err)
			os.Exit(2)
		}
		var v interface{}
		if res, err := view(&r, body); err != nil {
			msg := err.Error()
			if len(msg) > 300 {
				msg = msg[:300]
			}
			v = map[string]string{"error": msg}
		} else {
			v = res
		}
		if err := enc.Encode(map[string]interface{}{"id": r.ID, "views": map[string]interface{}{"go.stdlib": v}}); err != nil {
			fmt.Fprintln(os.Stderr, "encode:", err)
			os.Exit(2)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "read:", err)
		os.Exit(2)
	}
}
