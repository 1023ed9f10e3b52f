package dataverse

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// Rows are stored compactly because benchmarks load 1,000,000 contacts and 200,000 accounts:
//   - rowStore.rows is a slice of fixed-size, pointer-free structs, so the garbage collector never scans it;
//   - the column values of a row are encoded into one blob (slot number, then the value in its storage
//     form; absent slots are null) held in an append-only arena of large chunks, so a row costs one
//     64-byte struct, its blob and its index entry, with no per-row allocation;
//   - the primary-key index maps [16]byte GUIDs to row slots.
//
// Arena invariant: bytes written to a chunk are never modified afterwards. Decoded strings therefore
// alias the arena (unsafe.String) instead of being copied, and stay valid even after the row changes or
// the arena is compacted (a compaction copies into new chunks; old chunks live while referenced).

// arenaChunk is the size of one arena chunk; blobs larger than that get a chunk of their own.
const arenaChunk = 1 << 20

type blobRef struct{ chunk, off, n uint32 }

type arena struct {
	chunks [][]byte
	used   int64 // bytes written
	waste  int64 // bytes no live row references
}

func (a *arena) put(b []byte) blobRef {
	if len(b) == 0 {
		return blobRef{}
	}
	last := len(a.chunks) - 1
	if last < 0 || cap(a.chunks[last])-len(a.chunks[last]) < len(b) {
		a.chunks = append(a.chunks, make([]byte, 0, max(arenaChunk, len(b))))
		last++
	}
	c := a.chunks[last]
	off := len(c)
	a.chunks[last] = append(c, b...)
	a.used += int64(len(b))
	return blobRef{chunk: uint32(last), off: uint32(off), n: uint32(len(b))} //nolint:gosec // G115: chunks and blobs stay far below 4 GiB (bodies are capped at 128 MiB)
}

func (a *arena) get(r blobRef) []byte {
	if r.n == 0 {
		return nil
	}
	return a.chunks[r.chunk][r.off : r.off+r.n : r.off+r.n]
}

func (a *arena) release(r blobRef) { a.waste += int64(r.n) }

// row is one stored record. createdBy/modifiedBy index Emulator.users.
type row struct {
	id                    [16]byte
	created, modified     int64 // unix seconds
	version               int64
	ref                   blobRef
	createdBy, modifiedBy uint16
	live                  bool
}

type rowStore struct {
	rows  []row
	index map[[16]byte]uint32
	free  []uint32
	arena arena
	// slotCols maps blob slots to columns, for decoding.
	slotCols []*column
}

func (s *rowStore) clear() {
	s.rows = nil
	s.index = make(map[[16]byte]uint32)
	s.free = nil
	s.arena = arena{}
}

func (s *rowStore) count() int { return len(s.index) }

// lookup returns the slot of a live row.
func (s *rowStore) lookup(id [16]byte) (uint32, bool) {
	i, ok := s.index[id]
	return i, ok
}

// compactIfWasteful rewrites the arena when most of it is dead bytes. It runs only between transactions,
// because undo entries hold blob references into the current chunks.
func (s *rowStore) compactIfWasteful() {
	if s.arena.waste < 64<<20 || s.arena.waste*2 < s.arena.used {
		return
	}
	var fresh arena
	for i := range s.rows {
		if s.rows[i].live {
			s.rows[i].ref = fresh.put(s.arena.get(s.rows[i].ref))
		}
	}
	s.arena = fresh
}

// value is a decoded column value.
type value struct {
	kind vkind
	tbl  uint8 // lookups: index of the target table in Emulator.tables
	s    string
	i    int64 // vInt, vBool (0/1), vTime and vDate (unix seconds)
	f    float64
	g    [16]byte
}

type vkind uint8

const (
	vNull vkind = iota
	vString
	vInt
	vBool
	vFloat
	vTime
	vDate
	vGUID
)

func (v value) isNull() bool { return v.kind == vNull }

// guidRef is a lookup value pointing at row id of table t.
func guidRef(t *table, id [16]byte) value {
	return value{kind: vGUID, tbl: uint8(t.idx), g: id} //nolint:gosec // G115: the emulator has fewer than 256 tables
}

// encode appends the blob of vals (indexed by slot) to dst.
func (s *rowStore) encode(dst []byte, vals []value) []byte {
	for slot := range vals {
		v := &vals[slot]
		if v.kind == vNull {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(slot))
		switch s.slotCols[slot].store {
		case stString:
			dst = binary.AppendUvarint(dst, uint64(len(v.s)))
			dst = append(dst, v.s...)
		case stInt, stTime, stDate:
			dst = binary.AppendVarint(dst, v.i)
		case stBool:
			if v.i != 0 {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		case stFloat:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.f))
		case stLookup:
			dst = append(dst, v.tbl)
			dst = append(dst, v.g[:]...)
		}
	}
	return dst
}

// decode fills vals (one entry per slot) from a blob; slots absent from the blob become null.
func (s *rowStore) decode(b []byte, vals []value) {
	clear(vals)
	for i := 0; i < len(b); {
		slot, n := binary.Uvarint(b[i:])
		i += n
		c := s.slotCols[slot]
		v := &vals[slot]
		switch c.store {
		case stString:
			l, n := binary.Uvarint(b[i:])
			i += n
			v.kind = vString
			size := int(l) //nolint:gosec // G115: a length this package wrote, bounded by the blob
			if size > 0 {
				// The arena never rewrites written bytes (see the invariant above), so the string may alias it.
				v.s = unsafe.String(&b[i], size) //nolint:gosec // G103: audited; the arena's bytes are immutable
			}
			i += size
		case stInt, stTime, stDate:
			x, n := binary.Varint(b[i:])
			i += n
			v.i = x
			switch c.store {
			case stInt:
				v.kind = vInt
			case stTime:
				v.kind = vTime
			default:
				v.kind = vDate
			}
		case stBool:
			v.kind, v.i = vBool, int64(b[i])
			i++
		case stFloat:
			v.kind, v.f = vFloat, math.Float64frombits(binary.LittleEndian.Uint64(b[i:]))
			i += 8
		case stLookup:
			v.kind, v.tbl = vGUID, b[i]
			copy(v.g[:], b[i+1:i+17])
			i += 17
		}
	}
}

// undoEntry restores one row when a transaction rolls back.
type undoEntry struct {
	t    *table
	slot uint32
	old  row
	op   undoOp
}

type undoOp uint8

const (
	undoCreated undoOp = iota
	undoReplaced
	undoDeleted
)

// txn makes a group of writes atomic: a bulk message, a $batch change set, or one single write. The caller
// holds Emulator.mu for writing from begin to commit or rollback.
type txn struct {
	e    *Emulator
	undo []undoEntry
	done bool
}

func (tx *txn) insert(t *table, r row) uint32 {
	r.live = true
	var slot uint32
	if n := len(t.free); n > 0 {
		slot = t.free[n-1]
		t.free = t.free[:n-1]
		t.rows[slot] = r
	} else {
		slot = uint32(len(t.rows)) //nolint:gosec // G115: fewer than 4 billion rows
		if len(t.rows) == cap(t.rows) {
			// Double rather than append's 1.25× for large slices: a million-row load would otherwise copy
			// the table some 30 times over.
			grown := make([]row, len(t.rows), 2*cap(t.rows)+1024)
			copy(grown, t.rows)
			t.rows = grown
		}
		t.rows = append(t.rows, r)
	}
	t.index[r.id] = slot
	tx.undo = append(tx.undo, undoEntry{t: t, slot: slot, op: undoCreated})
	return slot
}

func (tx *txn) replace(t *table, slot uint32, r row) {
	tx.undo = append(tx.undo, undoEntry{t: t, slot: slot, old: t.rows[slot], op: undoReplaced})
	r.live = true
	t.rows[slot] = r
}

func (tx *txn) remove(t *table, slot uint32) {
	old := t.rows[slot]
	tx.undo = append(tx.undo, undoEntry{t: t, slot: slot, old: old, op: undoDeleted})
	t.rows[slot].live = false
	delete(t.index, old.id)
}

// commit makes the writes final: replaced and deleted blobs become waste, deleted slots reusable.
func (tx *txn) commit() {
	if tx.done {
		return
	}
	tx.done = true
	touched := map[*table]bool{}
	for _, u := range tx.undo {
		touched[u.t] = true
		switch u.op {
		case undoReplaced:
			u.t.arena.release(u.old.ref)
		case undoDeleted:
			u.t.arena.release(u.old.ref)
			u.t.free = append(u.t.free, u.slot)
		}
	}
	for t := range touched {
		t.compactIfWasteful()
	}
	tx.undo = tx.undo[:0]
}

// rollback restores every row the transaction touched, newest change first.
func (tx *txn) rollback() {
	if tx.done {
		return
	}
	tx.done = true
	for i := len(tx.undo) - 1; i >= 0; i-- {
		u := tx.undo[i]
		t := u.t
		cur := t.rows[u.slot]
		switch u.op {
		case undoCreated:
			t.arena.release(cur.ref)
			t.rows[u.slot].live = false
			delete(t.index, cur.id)
			t.free = append(t.free, u.slot)
		case undoReplaced:
			t.arena.release(cur.ref)
			t.rows[u.slot] = u.old
		case undoDeleted:
			t.rows[u.slot] = u.old
			t.index[u.old.id] = u.slot
		}
	}
	tx.undo = tx.undo[:0]
}
