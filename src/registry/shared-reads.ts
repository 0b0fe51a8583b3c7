/**
 * One read of each image file for the uploads to several servers at once. Each upload says, file
 * by file, whether it needs the file's bytes (subscribe) or not (skip); a file is read once every
 * upload still taking part has said so, and each chunk goes to every upload that asked for it.
 * The slowest of them sets the pace: at most QUEUED_CHUNKS chunks wait per upload, so memory
 * stays flat whatever the file size. An upload that fails, or stops reading, leaves: it no longer
 * holds the others back, and any later attempt of its own reads the file itself.
 */
import { readStream } from '../image/local-file.js';
import type { LocalFile } from '../image/local-image.js';

const READ_CHUNK_BYTES = 1024 * 1024;
/** Chunks read ahead of the slowest subscriber. */
const QUEUED_CHUNKS = 2;

interface Subscriber {
  queue: (Buffer | Error | null)[];
  /** Wakes the subscriber waiting for its next chunk. */
  wake?: () => void;
  gone: boolean;
}

/** One file's read, shared by the uploads that asked for it. */
class SharedFile {
  /** Uploads yet to say whether they read this file. */
  private readonly undecided: Set<number>;
  private readonly subscribers = new Map<number, Subscriber>();
  private reading = false;
  /** Wakes the reader waiting for room in the slowest queue. */
  private wakeReader?: () => void;

  constructor(
    private readonly file: LocalFile,
    members: number,
  ) {
    this.undecided = new Set(Array.from({ length: members }, (_, k) => k));
  }

  subscribe(member: number): Subscriber {
    const subscriber: Subscriber = { queue: [], gone: false };
    this.subscribers.set(member, subscriber);
    this.decide(member);
    return subscriber;
  }

  /** `member` will not read this file (it needs none of it, or it left). */
  decide(member: number): void {
    this.undecided.delete(member);
    if (this.undecided.size === 0 && !this.reading) {
      this.reading = true;
      void this.read();
    }
  }

  unsubscribe(member: number): void {
    const subscriber = this.subscribers.get(member);
    if (subscriber) {
      subscriber.gone = true;
      subscriber.queue.length = 0;
      this.subscribers.delete(member);
      subscriber.wake?.();
    }
    this.decide(member);
    this.wakeReader?.();
  }

  /** Called by a subscriber that took a chunk: the reader may go on. */
  took(): void {
    this.wakeReader?.();
  }

  private deliver(item: Buffer | Error | null): void {
    for (const subscriber of this.subscribers.values()) {
      subscriber.queue.push(item);
      subscriber.wake?.();
    }
  }

  private async roomForMore(): Promise<void> {
    const full = (): boolean => [...this.subscribers.values()].some((s) => s.queue.length >= QUEUED_CHUNKS);
    while (full()) await new Promise<void>((resolve) => (this.wakeReader = resolve));
    this.wakeReader = undefined;
  }

  private async read(): Promise<void> {
    if (this.subscribers.size === 0) return;
    try {
      for await (const chunk of readStream(this.file, { chunkBytes: READ_CHUNK_BYTES })) {
        if (this.subscribers.size === 0) return; // everyone left: nothing more to read
        this.deliver(chunk as Buffer);
        await this.roomForMore();
      }
      this.deliver(null);
    } catch (error) {
      // A file that changed or could not be read: each subscriber fails with it.
      this.deliver(error instanceof Error ? error : new Error(String(error)));
    }
  }
}

/** The shared reads of an image's files, for `members` uploads. */
export class SharedReads {
  private readonly files: SharedFile[];
  private readonly left = new Set<number>();

  constructor(files: readonly LocalFile[], members: number) {
    this.files = files.map((file) => new SharedFile(file, members));
  }

  /** The handle upload number `member` reads through. */
  member(member: number): SharedReadsMember {
    return {
      read: (index) => (this.left.has(member) ? undefined : this.stream(member, index)),
      skip: (index) => {
        if (!this.left.has(member)) this.files[index]?.decide(member);
      },
      leave: () => this.leave(member),
    };
  }

  private leave(member: number): void {
    if (this.left.has(member)) return;
    this.left.add(member);
    for (const file of this.files) file.unsubscribe(member);
  }

  private async *stream(member: number, index: number): AsyncGenerator<Buffer> {
    const file = this.files[index];
    if (!file) throw new Error(`no image file ${index}`);
    const subscriber = file.subscribe(member);
    try {
      for (;;) {
        while (subscriber.queue.length === 0 && !subscriber.gone)
          await new Promise<void>((resolve) => (subscriber.wake = resolve));
        subscriber.wake = undefined;
        const item = subscriber.queue.shift();
        // Gone before the end: never a silently short file.
        if (item === undefined) throw new Error(`the shared read of image file ${index} ended for this upload`);
        if (item === null) return;
        file.took();
        if (item instanceof Error) throw item;
        yield item;
      }
    } finally {
      // Read to the end, failed or stopped early: this upload no longer holds the others back.
      file.unsubscribe(member);
    }
  }
}

/** What one upload reads through: each file's chunks, or undefined once it left (it reads alone then). */
export interface SharedReadsMember {
  read(index: number): AsyncIterable<Buffer> | undefined;
  /** This upload needs none of file `index`'s bytes. */
  skip(index: number): void;
  /** This upload takes no further part (it failed, or is done). */
  leave(): void;
}
