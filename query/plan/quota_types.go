package plan

// PropertyQuota mirrors GA4's PropertyQuota JSON: the state of each quota
// of the property, answered when a request sets returnPropertyQuota.
type PropertyQuota struct {
	TokensPerDay                          QuotaStatus `json:"tokensPerDay"`
	TokensPerHour                         QuotaStatus `json:"tokensPerHour"`
	ConcurrentRequests                    QuotaStatus `json:"concurrentRequests"`
	ServerErrorsPerProjectPerHour         QuotaStatus `json:"serverErrorsPerProjectPerHour"`
	PotentiallyThresholdedRequestsPerHour QuotaStatus `json:"potentiallyThresholdedRequestsPerHour"`
	TokensPerProjectPerHour               QuotaStatus `json:"tokensPerProjectPerHour"`
}

// QuotaStatus is one quota: what was consumed in its current window and
// what remains of its limit.
type QuotaStatus struct {
	Consumed  int64 `json:"consumed"`
	Remaining int64 `json:"remaining"`
}
