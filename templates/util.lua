-- util.lua: small helpers shared by the templates: parameter checks that
-- fail with a message naming the parameter, and a line buffer.

local M = {}

function M.fail(fmt, ...)
  error(string.format(fmt, ...), 2)
end

function M.expect_int(p, name, lo, hi)
  local v = p[name]
  if math.type(v) ~= "integer" then
    error(string.format("parameter '%s' must be an integer (got %s)", name, tostring(v)), 3)
  end
  if v < lo or v > hi then
    error(string.format("parameter '%s' = %d is out of range [%d, %d]", name, v, lo, hi), 3)
  end
end

function M.expect_bool(p, name)
  if type(p[name]) ~= "boolean" then
    error(string.format("parameter '%s' must be a boolean (got %s)", name, tostring(p[name])), 3)
  end
end

function M.expect_enum(p, name, allowed)
  for _, a in ipairs(allowed) do
    if p[name] == a then return end
  end
  local names = {}
  for i, a in ipairs(allowed) do names[i] = tostring(a) end
  error(string.format("parameter '%s' = %s is not one of {%s}", name, tostring(p[name]),
                      table.concat(names, ", ")), 3)
end

function M.round_up(x, m)
  return (x + m - 1) // m * m
end

function M.buffer()
  local b = { parts = {} }
  function b:line(fmt, ...)
    if select("#", ...) > 0 then fmt = string.format(fmt, ...) end
    self.parts[#self.parts + 1] = fmt
  end
  function b:text()
    return table.concat(self.parts, "\n") .. "\n"
  end
  return b
end

return M
