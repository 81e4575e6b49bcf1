local json = require("json")

function handle(req)
  if req.path == "/counter/reset" then
    kv.delete("visits")
    return { status = 204 }
  end
  local n = kv.incr("visits")
  -- A short-lived marker per client: how many distinct clients in the last minute.
  local seen = "client:" .. (req.client or "?")
  if not kv.get(seen) then
    kv.set(seen, "1", 60)
    kv.incr("clients", 1, 60)
  end
  return {
    headers = { ["Content-Type"] = "application/json", ["Cache-Control"] = "no-store" },
    body = json.object({ edge = req.edge_name, visits = n, recent_clients = tonumber(kv.get("clients")) or 0 }) .. "\n",
  }
end
