-- json.lua -- just enough JSON encoding for flat objects of strings and numbers.
local M = {}

local function str(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function M.object(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    out[#out + 1] = str(k) .. ":" .. (type(v) == "number" and tostring(v) or str(tostring(v)))
  end
  return "{" .. table.concat(out, ",") .. "}"
end

return M
