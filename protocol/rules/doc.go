// Package rules is the one set of limits and value hygiene every event obeys:
// GA4's collection limits (event name 40 characters, 25 parameters of 40 and
// 100 characters, 25 user properties of 24 and 36, page_location 1000,
// page_referrer 420, page_title 300 characters) and what PostgreSQL text
// needs (valid UTF-8, no NUL).
//
// Both binaries link it. The agent applies it before it answers a hit:
// parsers refuse what GA4 refuses, with a 4xx naming the Rule, and Repair
// fixes what GA4 fixes (truncation by characters, invalid UTF-8 replaced,
// NUL dropped), counted per Rule. The aggregator runs Check only as a guard:
// an event the agent accepted always passes it (Repair's postcondition), so a
// dead letter means a bug, never a sender's mistake.
//
// Every Rule has a stable Code used in 4xx reasons, Measurement Protocol
// validation messages (with GA4's validationCode), metric labels and README's
// limits table. Codes are never renamed.
package rules
