import type { SandboxRegistry } from '../registry.js';
import { type Route, defineRoute } from '../route.js';
import {
  FILE_MODE_HEADER,
  FileEntrySchema,
  FileList,
  MkdirBody,
  PathQuery,
  RemoveQuery,
  SandboxIdParams,
  WriteFileQuery,
  WrittenFile,
} from '../schemas.js';

const DEFAULT_MODE = 0o644;

/** Upload, download, list, stat, mkdir and remove files in a sandbox; contents stream, never held whole. */
export function fileRoutes(registry: SandboxRegistry): Route[] {
  return [
    defineRoute(
      {
        method: 'PUT',
        url: '/v1/sandboxes/:id/files',
        operationId: 'writeFile',
        summary: 'Write the request body (application/octet-stream, streamed) to a file; missing parents are created',
        params: SandboxIdParams,
        query: WriteFileQuery,
        body: 'binary',
        responses: { 200: { description: 'the file was written', json: WrittenFile } },
      },
      async ({ params, query, body }) => {
        const mode = query.mode === undefined ? DEFAULT_MODE : parseInt(query.mode, 8);
        const mkdirs = query.mkdirs !== 'false';
        const bytes = await registry.get(params.id).files.write(query.path, body, { mode, mkdirs });
        return { path: query.path, bytes };
      },
    ),
    defineRoute(
      {
        method: 'GET',
        url: '/v1/sandboxes/:id/files',
        operationId: 'readFile',
        summary:
          "A file's content, streamed (Content-Length is its size when the guest reports one; X-Jitvm-Mode its " +
          'permission bits in octal)',
        params: SandboxIdParams,
        query: PathQuery,
        responses: { 200: { description: "the file's bytes", binary: true } },
      },
      async ({ params, query, reply }) => {
        const { size, mode, content } = await registry.get(params.id).files.readStream(query.path);
        // Files that report size 0 (those of /proc) may still have content: sent chunked.
        if (size > 0) reply.header('content-length', size);
        reply.header(FILE_MODE_HEADER, (mode & 0o7777).toString(8).padStart(4, '0'));
        return reply.type('application/octet-stream').send(content);
      },
    ),
    defineRoute(
      {
        method: 'GET',
        url: '/v1/sandboxes/:id/files/list',
        operationId: 'listFiles',
        summary: "A directory's entries",
        params: SandboxIdParams,
        query: PathQuery,
        responses: { 200: { description: 'the entries', json: FileList } },
      },
      async ({ params, query }) => ({ entries: await registry.get(params.id).files.list(query.path) }),
    ),
    defineRoute(
      {
        method: 'GET',
        url: '/v1/sandboxes/:id/files/stat',
        operationId: 'statFile',
        summary: 'Type, mode, size and modification time of a path (symlinks are not followed)',
        params: SandboxIdParams,
        query: PathQuery,
        responses: { 200: { description: 'the entry', json: FileEntrySchema } },
      },
      async ({ params, query }) => registry.get(params.id).files.stat(query.path),
    ),
    defineRoute(
      {
        method: 'POST',
        url: '/v1/sandboxes/:id/files/mkdir',
        operationId: 'mkdir',
        summary: 'Create a directory and its missing parents',
        params: SandboxIdParams,
        body: MkdirBody,
        responses: { 204: { description: 'the directory exists' } },
      },
      async ({ params, body, reply }) => {
        await registry.get(params.id).files.mkdir(body.path, body.mode);
        return reply.code(204).send();
      },
    ),
    defineRoute(
      {
        method: 'DELETE',
        url: '/v1/sandboxes/:id/files',
        operationId: 'removeFile',
        summary: 'Remove a file or an empty directory; `recursive=true` removes a whole tree',
        params: SandboxIdParams,
        query: RemoveQuery,
        responses: { 204: { description: 'removed' } },
      },
      async ({ params, query, reply }) => {
        await registry.get(params.id).files.remove(query.path, { recursive: query.recursive === 'true' });
        return reply.code(204).send();
      },
    ),
  ];
}
