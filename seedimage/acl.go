package seedimage

import (
	"encoding/binary"
	"fmt"
	"os/user"
	"sort"
	"strconv"
	"strings"
)

// The xattrs of POSIX ACLs.
const (
	aclAccessXattr  = "system.posix_acl_access"
	aclDefaultXattr = "system.posix_acl_default"
)

// The POSIX ACL xattr format (system.posix_acl_access, _default): a
// version, then entries of tag, permissions and id, little-endian.
const (
	aclVersion  = 2
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
	aclNoID     = 0xffffffff
)

// aclXattr turns an ACL in its long text form, as GNU tar --acls records
// it (one entry a line or comma: tag:qualifier:perms, # comments), into
// the xattr the kernel takes. A qualifier that is a name is looked up in
// this system's user and group database.
func aclXattr(text string) ([]byte, error) {
	type entry struct {
		tag  uint16
		perm uint16
		id   uint32
	}
	var entries []entry
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ',' }) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("the ACL entry %q is not tag:qualifier:perms", line)
		}
		var e entry
		qualified := parts[1] != ""
		switch parts[0] {
		case "user", "u":
			e.tag = aclUserObj
			if qualified {
				e.tag = aclUser
			}
		case "group", "g":
			e.tag = aclGroupObj
			if qualified {
				e.tag = aclGroup
			}
		case "mask", "m":
			e.tag = aclMask
		case "other", "o":
			e.tag = aclOther
		default:
			return nil, fmt.Errorf("the ACL entry %q has an unknown tag", line)
		}
		e.id = aclNoID
		if qualified {
			id, err := aclID(parts[1], e.tag == aclUser)
			if err != nil {
				return nil, fmt.Errorf("the ACL entry %q: %w", line, err)
			}
			if e.tag != aclUser && e.tag != aclGroup {
				return nil, fmt.Errorf("the ACL entry %q: only user and group entries name someone", line)
			}
			e.id = id
		}
		for _, c := range parts[2] {
			switch c {
			case 'r':
				e.perm |= 4
			case 'w':
				e.perm |= 2
			case 'x':
				e.perm |= 1
			case '-':
			default:
				return nil, fmt.Errorf("the ACL entry %q has unknown permissions", line)
			}
		}
		entries = append(entries, e)
	}
	// The kernel wants them by tag, then by id.
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].tag != entries[j].tag {
			return entries[i].tag < entries[j].tag
		}
		return entries[i].id < entries[j].id
	})
	out := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range entries {
		out = binary.LittleEndian.AppendUint16(out, e.tag)
		out = binary.LittleEndian.AppendUint16(out, e.perm)
		out = binary.LittleEndian.AppendUint32(out, e.id)
	}
	return out, nil
}

// aclID is a user's or group's number, given as one or as a name.
func aclID(q string, isUser bool) (uint32, error) {
	if n, err := strconv.ParseUint(q, 10, 32); err == nil {
		return uint32(n), nil
	}
	var id string
	if isUser {
		u, err := user.Lookup(q)
		if err != nil {
			return 0, err
		}
		id = u.Uid
	} else {
		g, err := user.LookupGroup(q)
		if err != nil {
			return 0, err
		}
		id = g.Gid
	}
	n, err := strconv.ParseUint(id, 10, 32)
	return uint32(n), err
}
