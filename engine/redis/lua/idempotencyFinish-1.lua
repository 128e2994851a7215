--[[
  Ingress idempotency: store the first completed response of a claimed Idempotency-Key, in one
  call (a MULTI/EXEC was a pipeline and a socket write of its own per request: bench:http).

  Input:
    KEYS[1] idempotency record (hash)   pp:{m}:idem:<sha256(key)>
    ARGV[1] HTTP status
    ARGV[2] headers (JSON object)
    ARGV[3] body
    ARGV[4] TTL (s): how long the response is replayed (24 h)

  Output: 1
]]

redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[1], 'headers', ARGV[2], 'body', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
