"""Fetching: the request to an OpenAI-compatible `/v1/audio/speech` endpoint and its bytes as they come.

`source` asks (with retries and resumes), `sse` reads event streams, `wire` and `httpclient` carry the
bytes (through a simulated `network` when asked), `endpoints` remembers what each endpoint did, and
`fetch` runs one reply: bytes in, decoded audio handed to the playout's feed."""
