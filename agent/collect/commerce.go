package collect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/rules"
)

// Ecommerce on the wire. GA4's ecommerce fields arrive as ordinary
// parameters (currency, value, tax, shipping, transaction_id; gtag.js sends
// currency as cu and the rest as ep.*/epn.*) and items (gtag.js: pr1…prN
// strings; the Measurement Protocol and t.js: an items list of objects).
// takeCommerce moves them out of a hit's parameters into its own fields,
// so they are stored once, typed, and checked by protocol/rules.

// commerce is a hit's ecommerce data.
type commerce struct {
	Currency      string // upper case; "" when not sent
	Value         float64
	Tax           float64
	Shipping      float64
	TransactionID string
	Items         []protocol.Item
}

// commerceNumbers are the event parameters GA4 reads as amounts.
var commerceNumbers = [...]string{"value", "tax", "shipping"}

// takeCommerce moves currency, value, tax, shipping and transaction_id
// from h's parameters into h.commerce (cu, when sent, is there already) and
// checks them. field prefixes parameter names in errors ("ep.", "params.",
// "p.").
func takeCommerce(h *Hit, field string) *ParamError { return takeCommerceOf(h, field, true) }

// takeCommerceOf is takeCommerce; with inParams false it does not look
// for the ecommerce parameters in h's parameters, which the caller knows
// hold none (isCommerceParam), and only normalizes cu and checks items.
func takeCommerceOf(h *Hit, field string, inParams bool) *ParamError {
	c := &h.commerce
	if inParams {
		if s, ok := h.Params["currency"]; ok {
			delete(h.Params, "currency")
			if c.Currency == "" {
				c.Currency = s
			}
			if v := rules.Currency(field+"currency", s); v != nil {
				return ruleError(v)
			}
		}
	}
	if c.Currency != "" {
		c.Currency = rules.NormalizeCurrency(c.Currency)
	}
	if inParams {
		if perr := takeCommerceParams(h, field); perr != nil {
			return perr
		}
	}
	for i := range c.Items {
		if v := rules.CheckItem(fmt.Sprintf("items[%d].", i), &c.Items[i]); v != nil {
			return ruleError(v)
		}
	}
	return nil
}

// takeCommerceParams moves transaction_id, value, tax and shipping from
// h's parameters into h.commerce (see takeCommerce).
func takeCommerceParams(h *Hit, field string) *ParamError {
	c := &h.commerce
	if s, ok := h.Params["transaction_id"]; ok {
		delete(h.Params, "transaction_id")
		c.TransactionID = s
	} else if f, ok := h.NumParams["transaction_id"]; ok { // a number sent as one
		delete(h.NumParams, "transaction_id")
		c.TransactionID = strconv.FormatFloat(f, 'f', -1, 64)
	}
	for i, name := range commerceNumbers {
		f, ok := h.NumParams[name]
		if ok {
			delete(h.NumParams, name)
		} else if s, sent := h.Params[name]; sent {
			// A number sent as text, as some tags do: GA4 reads it.
			delete(h.Params, name)
			var perr *ParamError
			if f, perr = number(field+name, strings.TrimSpace(s)); perr != nil {
				perr.Rule = rules.ParamNumber
				perr.Reason += " (rule " + rules.ParamNumber.Code + ")"
				return perr
			}
		}
		*[...]*float64{&c.Value, &c.Tax, &c.Shipping}[i] = f
	}
	if len(h.Params) == 0 {
		h.Params = nil
	}
	if len(h.NumParams) == 0 {
		h.NumParams = nil
	}
	return nil
}

// isCommerceParam reports whether takeCommerce reads an event parameter
// of this name.
func isCommerceParam(name string) bool {
	switch name {
	case "currency", "transaction_id", "value", "tax", "shipping":
		return true
	}
	return false
}

// gtagItemKeys maps the two-letter keys of a gtag.js item string
// (pr1=id…~nm…~…) to the item's text fields; pr, ds and qt are numbers.
var gtagItemKeys = map[string]func(it *protocol.Item) *string{
	"id": func(it *protocol.Item) *string { return &it.ID },
	"nm": func(it *protocol.Item) *string { return &it.Name },
	"br": func(it *protocol.Item) *string { return &it.Brand },
	"ca": func(it *protocol.Item) *string { return &it.Category },
	"c2": func(it *protocol.Item) *string { return &it.Category2 },
	"c3": func(it *protocol.Item) *string { return &it.Category3 },
	"c4": func(it *protocol.Item) *string { return &it.Category4 },
	"c5": func(it *protocol.Item) *string { return &it.Category5 },
	"va": func(it *protocol.Item) *string { return &it.Variant },
	"li": func(it *protocol.Item) *string { return &it.ListID },
	"ln": func(it *protocol.Item) *string { return &it.ListName },
	"pn": func(it *protocol.Item) *string { return &it.PromotionName },
	"af": func(it *protocol.Item) *string { return &it.Affiliation },
	"cp": func(it *protocol.Item) *string { return &it.Coupon },
}

// parseGtagItems reads cu and the item strings pr1…prN of a gtag.js hit,
// in index order. Other item keys gtag.js may send (lp index, lo location,
// pi promotion id, cn/cs creative, k0/v0 custom item parameters) are
// accepted and not kept.
func parseGtagItems(h *Hit, v hitParams) *ParamError {
	if s := v.value(pCU); s != "" {
		if v := rules.Currency("cu", s); v != nil {
			return ruleError(v)
		}
		h.commerce.Currency = s
	}
	type indexed struct {
		n    int
		key  string
		item string
	}
	var found []indexed
	for k, vals := range v.all(itemKeys) {
		if !isItemKey(k) {
			continue
		}
		n, err := strconv.Atoi(k[2:])
		if err != nil {
			continue // not an item key (pr followed by other text)
		}
		if n > rules.MaxItems {
			return &ParamError{Param: fieldName(k), Rule: rules.ItemCount,
				Reason: fmt.Sprintf("item index %d beyond GA4's %d items per event (rule %s)", n, rules.MaxItems, rules.ItemCount.Code)}
		}
		s := ""
		if len(vals) > 0 {
			s = vals[0]
		}
		found = append(found, indexed{n, k, s})
	}
	if len(found) == 0 {
		return nil
	}
	sort.Slice(found, func(i, j int) bool { return found[i].n < found[j].n })
	h.commerce.Items = make([]protocol.Item, 0, len(found))
	for _, f := range found {
		it, perr := parseGtagItem(f.key, f.item)
		if perr != nil {
			return perr
		}
		h.commerce.Items = append(h.commerce.Items, it)
	}
	return nil
}

// parseGtagItem reads one item string: fields separated by ~, each a
// two-letter key and its value (idSKU_1~nmShirt~pr9.99~qt2).
func parseGtagItem(param, s string) (protocol.Item, *ParamError) {
	var it protocol.Item
	for field := range strings.SplitSeq(s, "~") {
		if len(field) < 2 {
			continue
		}
		key, val := field[:2], field[2:]
		where := fieldName(param) + "." + key
		if f, ok := gtagItemKeys[key]; ok {
			if v := rules.ItemValue(where, val); v != nil {
				return it, ruleError(v)
			}
			*f(&it) = val
			continue
		}
		switch key {
		case "pr", "ds":
			f, err := strconv.ParseFloat(val, 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return it, &ParamError{Param: where, Rule: rules.ItemNumber,
					Reason: fmt.Sprintf("not a number: %s (rule %s)", quote(val), rules.ItemNumber.Code)}
			}
			if key == "pr" {
				it.Price = f
			} else {
				it.Discount = f
			}
		case "qt":
			q, perr := itemQuantity(where, val)
			if perr != nil {
				return it, perr
			}
			it.Quantity = q
		}
	}
	return it, nil
}

// itemQuantity parses a quantity: a whole number, possibly written as a
// float (2.0), from 0 to rules.MaxItemQuantity.
func itemQuantity(where, s string) (int64, *ParamError) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f != math.Trunc(f) || f < 0 || f > rules.MaxItemQuantity {
		return 0, &ParamError{Param: where, Rule: rules.ItemNumber,
			Reason: fmt.Sprintf("quantity must be a whole number from 0 to %d, got %s (rule %s)", rules.MaxItemQuantity, quote(s), rules.ItemNumber.Code)}
	}
	return int64(f), nil
}

// jsonItem is one item object of the Measurement Protocol's and t.js's
// items list, in GA4's parameter names. Other keys (index, location_id,
// promotion_id, creative_name, creative_slot, custom item parameters) are
// accepted and not kept.
type jsonItem map[string]json.RawMessage

// jsonItemTexts maps GA4's item parameter names to the item's text fields.
var jsonItemTexts = map[string]func(it *protocol.Item) *string{
	"item_id":        gtagItemKeys["id"],
	"item_name":      gtagItemKeys["nm"],
	"item_brand":     gtagItemKeys["br"],
	"item_category":  gtagItemKeys["ca"],
	"item_category2": gtagItemKeys["c2"],
	"item_category3": gtagItemKeys["c3"],
	"item_category4": gtagItemKeys["c4"],
	"item_category5": gtagItemKeys["c5"],
	"item_variant":   gtagItemKeys["va"],
	"item_list_id":   gtagItemKeys["li"],
	"item_list_name": gtagItemKeys["ln"],
	"promotion_name": gtagItemKeys["pn"],
	"affiliation":    gtagItemKeys["af"],
	"coupon":         gtagItemKeys["cp"],
}

// parseJSONItems reads an items list (field: where it was sent, e.g.
// events[0].params.items). null is no items.
func parseJSONItems(field string, raw json.RawMessage) ([]protocol.Item, *ParamError) {
	if firstByte(raw) == 'n' {
		return nil, nil
	}
	if firstByte(raw) != '[' {
		return nil, &ParamError{Param: field, Reason: "items must be a list of objects"}
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, &ParamError{Param: field, Reason: "items: " + describeJSONError(err)}
	}
	if len(list) > rules.MaxItems {
		return nil, &ParamError{Param: field, Rule: rules.ItemCount,
			Reason: fmt.Sprintf("%d items, GA4 allows %d (rule %s)", len(list), rules.MaxItems, rules.ItemCount.Code)}
	}
	items := make([]protocol.Item, len(list))
	for i, r := range list {
		where := fmt.Sprintf("%s[%d]", field, i)
		var obj jsonItem
		if firstByte(r) != '{' || json.Unmarshal(r, &obj) != nil {
			return nil, &ParamError{Param: where, Reason: "an item must be an object of item parameters"}
		}
		it := &items[i]
		for _, k := range sortedKeys(obj) {
			s, ok, isText := scalar(obj[k])
			if !ok {
				if bytes.Equal(bytes.TrimSpace(obj[k]), []byte("null")) {
					continue
				}
				return nil, &ParamError{Param: where + "." + k, Reason: "value must be a string, number or boolean"}
			}
			if f, known := jsonItemTexts[k]; known {
				if v := rules.ItemValue(where+"."+k, s); v != nil {
					return nil, ruleError(v)
				}
				*f(it) = s
				continue
			}
			switch k {
			case "price", "discount":
				f, err := strconv.ParseFloat(s, 64)
				if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || (isText && s == "") {
					return nil, &ParamError{Param: where + "." + k, Rule: rules.ItemNumber,
						Reason: fmt.Sprintf("not a number: %s (rule %s)", quote(s), rules.ItemNumber.Code)}
				}
				if k == "price" {
					it.Price = f
				} else {
					it.Discount = f
				}
			case "quantity":
				q, perr := itemQuantity(where+"."+k, s)
				if perr != nil {
					return nil, perr
				}
				it.Quantity = q
			}
		}
	}
	return items, nil
}
