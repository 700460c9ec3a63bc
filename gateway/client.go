package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls a running daemon's API (the ops commands use it).
type Client struct {
	URL   string // e.g. http://127.0.0.1:8470
	Token string
	HTTP  *http.Client
}

// APIError is a non-2xx answer.
type APIError struct {
	Status int
	Body   ErrorBody
	Raw    string
}

func (e *APIError) Error() string {
	if len(e.Body.Errors) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "HTTP %d:", e.Status)
		for i, is := range e.Body.Errors {
			if i == 10 {
				fmt.Fprintf(&b, " ... (%d more)", len(e.Body.Errors)-10+e.Body.ErrorsDropped)
				break
			}
			fmt.Fprintf(&b, "\n  seq %d %s %s: %s", is.Seq, is.Field, is.Code, is.Message)
		}
		return b.String()
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, strings.TrimSpace(e.Raw))
}

func (c *Client) do(ctx context.Context, method, path, ctype string, body io.Reader, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Minute}
	}
	res, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode/100 != 2 {
		e := &APIError{Status: res.StatusCode, Raw: string(raw)}
		json.Unmarshal(raw, &e.Body)
		return res.StatusCode, e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("gateway: client: %w", err)
		}
	}
	return res.StatusCode, nil
}

// Submit posts a batch (JSON or NDJSON) and returns the status and the batch.
func (c *Client) Submit(ctx context.Context, body io.Reader, ndjson bool) (int, *BatchView, error) {
	ct := "application/json"
	if ndjson {
		ct = "application/x-ndjson"
	}
	var v BatchView
	status, err := c.do(ctx, "POST", "/v1/batches", ct, body, &v)
	if err != nil {
		return status, nil, err
	}
	return status, &v, nil
}

// Batch reads one batch.
func (c *Client) Batch(ctx context.Context, id string) (*BatchView, error) {
	var v BatchView
	_, err := c.do(ctx, "GET", "/v1/batches/"+url.PathEscape(id), "", nil, &v)
	return &v, err
}

// Batches lists batches.
func (c *Client) Batches(ctx context.Context, state string, limit int) ([]*BatchView, error) {
	var v BatchList
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	_, err := c.do(ctx, "GET", "/v1/batches?"+q.Encode(), "", nil, &v)
	return v.Items, err
}

// Results reads one page of a batch's results.
func (c *Client) Results(ctx context.Context, id, status, cursor string, limit int) (*ResultPage, error) {
	var v ResultPage
	q := url.Values{}
	for k, val := range map[string]string{"status": status, "cursor": cursor} {
		if val != "" {
			q.Set(k, val)
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	_, err := c.do(ctx, "GET", "/v1/batches/"+url.PathEscape(id)+"/results?"+q.Encode(), "", nil, &v)
	return &v, err
}

// Deliveries lists deliveries in a state ("" all).
func (c *Client) Deliveries(ctx context.Context, state string) ([]DeliveryView, error) {
	var v struct {
		Items []DeliveryView `json:"items"`
	}
	_, err := c.do(ctx, "GET", "/v1/deliveries?state="+url.QueryEscape(state), "", nil, &v)
	return v.Items, err
}

// Replay requests a replay of a DEAD delivery.
func (c *Client) Replay(ctx context.Context, id int64, reason string) (int, *ReplayView, error) {
	b, _ := json.Marshal(map[string]string{"reason": reason})
	var v ReplayView
	status, err := c.do(ctx, "POST", "/v1/deliveries/"+strconv.FormatInt(id, 10)+"/replay", "application/json", bytes.NewReader(b), &v)
	return status, &v, err
}

// Approve approves a pending replay request.
func (c *Client) Approve(ctx context.Context, id int64) (*ReplayView, error) {
	var v ReplayView
	_, err := c.do(ctx, "POST", "/v1/replays/"+strconv.FormatInt(id, 10)+"/approve", "", nil, &v)
	return &v, err
}

// Replays lists replay requests.
func (c *Client) Replays(ctx context.Context, state string) ([]ReplayView, error) {
	var v struct {
		Items []ReplayView `json:"items"`
	}
	_, err := c.do(ctx, "GET", "/v1/replays?state="+url.QueryEscape(state), "", nil, &v)
	return v.Items, err
}
