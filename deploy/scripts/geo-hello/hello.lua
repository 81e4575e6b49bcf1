--[[minicdn
name = "geo-hello";
routes = ( { path = "/hello*"; method = "GET"; } );
]]
-- Greets the visitor in the language of their region, answered at the edge.
local greetings = { eu = "Hallo", us = "Hello", ap = "Ni hao" }

function handle(req)
  local who = req.args.name or req.headers["x-name"] or "visitor"
  local hi = greetings[req.region] or "Hello"
  return {
    status = 200,
    headers = { ["Content-Type"] = "text/plain; charset=utf-8", ["Cache-Control"] = "no-store" },
    body = string.format("%s %s! (you are in %s, served by %s in %s)\n",
                         hi, who, req.region, req.edge_name, req.edge_region),
  }
end
