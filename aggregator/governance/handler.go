package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// The subject request API, asynchronous as GA4's User Deletion API:
//
//	POST /v1/gdpr/exports    {"property": "3", "clientId": "GA1.1.123.456"}  → 202 {"name": "gdpr/exports/17", "state": "PENDING", …}
//	POST /v1/gdpr/erasures   {"property": "3", "userId": "u-42"}             → 202
//	GET  /v1/gdpr/exports/17, GET /v1/gdpr/erasures/17                       → 200 with state, and the result once DONE
//
// Only admin keys (avila key create --scope admin) of the property may call
// it; a read key gets 403 PERMISSION_DENIED naming the scope. Errors use
// Google's shape, as the Data API does.

// maxRequestBody bounds a request body.
const maxRequestBody = 16 << 10

// handlerTimeout bounds one call's database work.
const handlerTimeout = 10 * time.Second

// Handler serves /v1/gdpr/.
type Handler struct {
	store    *postgres.Store
	log      *slog.Logger
	accepted func()
}

// NewHandler returns the API over store. Mount it at "/v1/gdpr/".
// accepted, if not nil, is called after each request is stored (the
// node's Worker.Wake, so it starts at once).
func NewHandler(store *postgres.Store, log *slog.Logger, accepted func()) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{store: store, log: log, accepted: accepted}
}

// kinds maps a path collection to the request kind.
var kinds = map[string]string{"exports": "export", "erasures": "erasure"}

type apiError struct {
	code   int
	status string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(code int, status, format string, args ...any) *apiError {
	return &apiError{code: code, status: status, msg: fmt.Sprintf(format, args...)}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), handlerTimeout)
	defer cancel()
	resp, code, err := h.serve(ctx, r)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			h.log.Error("gdpr api", "path", r.URL.Path, "err", err)
			ae = errorf(http.StatusInternalServerError, "INTERNAL", "Internal error; see the aggregator's log.")
		}
		writeJSON(w, ae.code, map[string]any{"error": map[string]any{"code": ae.code, "message": ae.msg, "status": ae.status}})
		return
	}
	writeJSON(w, code, resp)
}

func (h *Handler) serve(ctx context.Context, r *http.Request) (any, int, error) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/gdpr/")
	coll, idText, hasID := strings.Cut(rest, "/")
	kind, known := kinds[coll]
	switch {
	case !ok || !known || (hasID && idText == ""):
		return nil, 0, errorf(http.StatusNotFound, "NOT_FOUND", "No method %s %s; this server answers POST /v1/gdpr/exports, POST /v1/gdpr/erasures and GET /v1/gdpr/{exports|erasures}/{id}.",
			r.Method, truncate(r.URL.Path))
	case !hasID && r.Method != http.MethodPost, hasID && r.Method != http.MethodGet:
		return nil, 0, errorf(http.StatusMethodNotAllowed, "INVALID_ARGUMENT", "%s %s: use POST to create a request and GET /v1/gdpr/%s/{id} for its state.", r.Method, truncate(r.URL.Path), coll)
	}
	grant, err := h.authenticate(ctx, r)
	if err != nil {
		return nil, 0, err
	}
	if hasID {
		id, err := strconv.ParseInt(idText, 10, 64)
		if err != nil || id <= 0 {
			return nil, 0, errorf(http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid request id %q: ids are positive integers.", truncate(idText))
		}
		req, err := h.store.GDPRRequestByID(ctx, id)
		if errors.Is(err, postgres.ErrNotFound) || (err == nil && (req.Kind != kind || !slices.Contains(grant.SiteIDs, req.Site))) {
			return nil, 0, errorf(http.StatusNotFound, "NOT_FOUND", "No %s request %d for this key's properties.", kind, id)
		}
		if err != nil {
			return nil, 0, err
		}
		return requestJSON(req), http.StatusOK, nil
	}
	var body struct {
		Property json.Number `json:"property"`
		ClientID string      `json:"clientId"`
		UserID   string      `json:"userId"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, 0, errorf(http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON body: %v. Send {\"property\": \"<id>\", \"clientId\": \"<_ga cookie or client id>\"} or {\"property\": \"<id>\", \"userId\": \"<user_id>\"}.", err)
	}
	site, err := strconv.ParseUint(strings.Trim(body.Property.String(), `"`), 10, 31)
	if err != nil || site == 0 {
		return nil, 0, errorf(http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid property %q: property ids are positive integers.", truncate(body.Property.String()))
	}
	if !slices.Contains(grant.SiteIDs, uint32(site)) {
		return nil, 0, errorf(http.StatusForbidden, "PERMISSION_DENIED", "The API key does not have sufficient permissions for property properties/%d.", site)
	}
	id, value := ClientID, body.ClientID
	switch {
	case body.ClientID != "" && body.UserID != "":
		return nil, 0, errorf(http.StatusBadRequest, "INVALID_ARGUMENT", "Give clientId or userId, not both: a request names one identity.")
	case body.UserID != "":
		id, value = UserID, body.UserID
	case body.ClientID == "":
		return nil, 0, errorf(http.StatusBadRequest, "INVALID_ARGUMENT", "Missing clientId or userId: name the subject by the client id of its _ga cookie or by the site's user_id.")
	}
	sub, err := Resolve(ctx, h.store, uint32(site), id, value)
	switch {
	case errors.Is(err, ErrBadSubject):
		return nil, 0, errorf(http.StatusBadRequest, "INVALID_ARGUMENT", "%v", err)
	case errors.Is(err, postgres.ErrNotFound):
		return nil, 0, errorf(http.StatusNotFound, "NOT_FOUND", "No property %d.", site)
	case errors.Is(err, postgres.ErrNoIdentitySecret):
		return nil, 0, errorf(http.StatusConflict, "FAILED_PRECONDITION", "Property %d has no identity secret: none of its visitors can be identified. %s", site, CookielessNote)
	case err != nil:
		return nil, 0, err
	}
	req, err := h.store.CreateGDPRRequest(ctx, postgres.GDPRRequest{Site: sub.Site, Kind: kind, Identity: string(sub.Identity),
		Subject: sub.Key, RequestedBy: "api:" + grant.Prefix})
	if err != nil {
		return nil, 0, err
	}
	h.log.Info("gdpr request accepted", "id", req.ID, "kind", kind, "site", req.Site, "key", grant.Prefix)
	if h.accepted != nil {
		h.accepted()
	}
	return requestJSON(req), http.StatusAccepted, nil
}

// authenticate checks the bearer key and its scope.
func (h *Handler) authenticate(ctx context.Context, r *http.Request) (postgres.KeyGrant, error) {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
		return postgres.KeyGrant{}, errorf(http.StatusUnauthorized, "UNAUTHENTICATED", "Request is missing a valid API key: send 'Authorization: Bearer <key>'.")
	}
	grant, err := h.store.LookupAPIKeyGrant(ctx, strings.TrimSpace(key))
	if errors.Is(err, postgres.ErrNotFound) {
		return grant, errorf(http.StatusUnauthorized, "UNAUTHENTICATED", "The API key is not valid or was revoked.")
	}
	if err != nil {
		return grant, err
	}
	if !grant.Scope.Allows(postgres.ScopeAdmin) {
		return grant, errorf(http.StatusForbidden, "PERMISSION_DENIED",
			"The API key %s has scope %q; data subject requests need scope \"admin\" (avila key create --scope admin).", grant.Prefix, grant.Scope)
	}
	return grant, nil
}

// requestJSON is a request as the API shows it.
func requestJSON(r postgres.GDPRRequest) map[string]any {
	coll := "exports"
	if r.Kind == "erasure" {
		coll = "erasures"
	}
	out := map[string]any{
		"name":       "gdpr/" + coll + "/" + strconv.FormatInt(r.ID, 10),
		"id":         strconv.FormatInt(r.ID, 10),
		"kind":       r.Kind,
		"property":   strconv.FormatUint(uint64(r.Site), 10),
		"identity":   r.Identity,
		"state":      strings.ToUpper(r.State),
		"createTime": r.CreatedAt.UTC().Format(time.RFC3339Nano),
		"note":       CookielessNote,
	}
	if r.FinishedAt != nil {
		out["finishTime"] = r.FinishedAt.UTC().Format(time.RFC3339Nano)
	}
	if r.Error != "" {
		out["error"] = r.Error
	}
	if len(r.Result) > 0 {
		out["result"] = json.RawMessage(r.Result)
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
