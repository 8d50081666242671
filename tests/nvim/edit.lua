-- End-to-end edits through a real LSP client: Neovim lists Quill's code actions, resolves
-- "Quill: Document" and applies its edit, then runs `quill.edit`, whose `workspace/applyEdit`
-- Neovim's own handler applies (versioned TextDocumentEdit, UTF-16 positions, a line with
-- non-ASCII text above the edit). That edit changes two separate line runs (two TextEdits in
-- one workspace edit), and one `u` undoes both: the whole edit is one undo step.
--
-- Run by tests/e2e_neovim.rs with QUILL_BIN, QUILL_E2E_DIR and QUILL_FAKE_URL (a fake
-- OpenAI-compatible server answering the Document request first, then the edit).

local api = vim.api

local QUILL = os.getenv('QUILL_BIN')
local ROOT = os.getenv('QUILL_E2E_DIR') or vim.fn.tempname()
local FAKE = os.getenv('QUILL_FAKE_URL')

local function die(msg)
  io.stderr:write('FAIL [edit]: ' .. msg .. '\n')
  os.exit(1)
end

local function say(msg)
  io.stdout:write(msg .. '\n')
  io.stdout:flush()
end

local CALC = {
  '# café ☕ 😀 calc',
  '',
  'def area(r):',
  '    return 3.14 * r * r',
  '',
  'def double(x):',
  '    return x * 2',
}

local function expect_lines(what, buf, want)
  local got = api.nvim_buf_get_lines(buf, 0, -1, true)
  if not vim.deep_equal(got, want) then
    die(('%s: buffer is\n%s\nwanted\n%s'):format(what, vim.inspect(got), vim.inspect(want)))
  end
end

local function main()
  if not QUILL or not FAKE then
    die('set QUILL_BIN and QUILL_FAKE_URL')
  end
  local dir = ROOT .. '/edit'
  vim.fn.mkdir(dir, 'p')
  local path = dir .. '/calc.py'
  vim.fn.writefile(CALC, path)
  vim.cmd.edit(vim.fn.fnameescape(path))
  local buf = api.nvim_get_current_buf()
  vim.bo[buf].filetype = 'python'

  local exited = nil
  local id = vim.lsp.start({
    name = 'quill-edit',
    cmd = { QUILL, 'lsp', '--log-file', ROOT .. '/quill-edit.log' },
    cmd_env = { QUILL_LOG = 'info', QUILL_PROBE_OLLAMA = 'off', QUILL_PROBE_LLAMACPP = 'off' },
    root_dir = dir,
    capabilities = { general = { positionEncodings = { 'utf-16' } } },
    init_options = {
      providers = { x = { kind = 'openai-compatible', base_url = FAKE .. '/v1', model = 'm' } },
      edit = { provider = 'x' },
      chat = { provider = 'x' },
      completion = { provider = 'x' },
    },
    on_exit = function(code, signal)
      exited = { code, signal }
    end,
  }, { bufnr = buf })
  local client = id and vim.lsp.get_client_by_id(id)
  if not client then
    die('vim.lsp.start failed')
  end
  if not vim.wait(10000, function()
    return (client.initialized and vim.lsp.buf_is_attached(buf, id)) or exited ~= nil
  end, 10) then
    die('the server did not initialize')
  end
  if exited then
    die('the server exited during initialization')
  end
  local uri = vim.uri_from_bufnr(buf)

  -- List the actions for `area` (lines 3-4) and resolve "Quill: Document".
  local range = { start = { line = 2, character = 0 }, ['end'] = { line = 4, character = 0 } }
  local resp = client:request_sync('textDocument/codeAction', {
    textDocument = { uri = uri },
    range = range,
    context = { diagnostics = {} },
  }, 10000, buf)
  if not resp or resp.err then
    die('codeAction failed: ' .. vim.inspect(resp))
  end
  local document
  for _, action in ipairs(resp.result or {}) do
    if action.title == 'Quill: Document' then
      document = action
    end
  end
  if not document or not document.data or document.edit then
    die('no resolvable "Quill: Document" action: ' .. vim.inspect(resp.result))
  end
  local resolved = client:request_sync('codeAction/resolve', document, 20000, buf)
  if not resolved or resolved.err or not resolved.result.edit then
    die('codeAction/resolve failed: ' .. vim.inspect(resolved))
  end
  vim.lsp.util.apply_workspace_edit(resolved.result.edit, client.offset_encoding)
  local documented = {
    '# café ☕ 😀 calc',
    '',
    'def area(r):',
    '    """Area of a circle of radius r."""',
    '    return 3.14 * r * r',
    '',
    'def double(x):',
    '    return x * 2',
  }
  expect_lines('after resolving Document', buf, documented)

  -- Close the undo block of the resolved edit (`:h undo-break`), so `u` below can only take
  -- back what the one workspace/applyEdit did.
  vim.o.undolevels = vim.o.undolevels

  -- Count the TextEdits of the workspace/applyEdit, then let Neovim's own handler apply it.
  local default_apply = vim.lsp.handlers['workspace/applyEdit']
  local text_edits = nil
  vim.lsp.handlers['workspace/applyEdit'] = function(err, params, ctx, config)
    text_edits = 0
    for _, change in ipairs(params.edit.documentChanges or {}) do
      text_edits = text_edits + #(change.edits or {})
    end
    for _, edits in pairs(params.edit.changes or {}) do
      text_edits = text_edits + #edits
    end
    local result = default_apply(err, params, ctx, config)
    -- Close the undo block after each workspace/applyEdit (`:h undo-break`): were the edit
    -- sent as several requests, one `u` below would take back only the last.
    vim.o.undolevels = vim.o.undolevels
    return result
  end

  -- quill.edit on both functions; the answer changes a line in each, with unchanged lines
  -- between: the server sends one workspace/applyEdit and Neovim applies it.
  local args = {
    uri = uri,
    range = { start = { line = 2, character = 0 }, ['end'] = { line = 8, character = 0 } },
    instruction = 'more precise pi, and use addition',
    intent = 'edit',
  }
  local ran = client:request_sync('workspace/executeCommand', { command = 'quill.edit', arguments = { args } }, 20000, buf)
  if not ran or ran.err then
    die('quill.edit failed: ' .. vim.inspect(ran))
  end
  if not (ran.result and ran.result.applied) then
    die('quill.edit did not report applied: ' .. vim.inspect(ran.result))
  end
  if text_edits == nil or text_edits < 2 then
    die('wanted one workspace edit of two or more TextEdits, got ' .. vim.inspect(text_edits))
  end
  local edited = vim.deepcopy(documented)
  edited[5] = '    return 3.14159 * r * r'
  edited[8] = '    return x + x'
  expect_lines('after quill.edit', buf, edited)

  -- The server's copy follows the buffer (Neovim sent the didChange for the applied edit).
  local want = table.concat(edited, '\n') .. '\n'
  if not vim.wait(5000, function()
    local d = client:request_sync('quill/document', { uri = uri }, 5000, buf)
    return d and d.result and d.result.text == want
  end, 20) then
    die('the server never saw the applied edit')
  end

  -- One undo step takes the whole edit back: both changed runs.
  vim.cmd('silent undo')
  expect_lines('after one undo', buf, documented)

  client:stop()
  vim.wait(5000, function()
    return exited ~= nil
  end, 10)
  say('edit scenario passed: runs passed')
end

local ok, err = xpcall(main, debug.traceback)
if not ok then
  die('Lua error: ' .. tostring(err))
end
os.exit(0)
