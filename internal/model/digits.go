package model

import (
	"errors"
	"fmt"
)

// The digits data set. Each image is drawn from a stroke template of its
// digit with a random affine transform, per-vertex wobble, stroke thickness,
// ink level and pixel noise, all in integer arithmetic from a SplitMix64
// stream, so the same seed gives the same pixels on every machine.

const (
	// DigitSide is the width and height of a digit image in pixels.
	DigitSide = 16
	// DigitPixels is the length of a digit image: DigitSide² grayscale bytes,
	// row-major, 0 for background and 255 for full ink.
	DigitPixels = DigitSide * DigitSide
	// DigitClasses is the number of digit classes, 0 to 9.
	DigitClasses = 10
)

// ErrDigit is returned for a digit outside 0 to 9.
var ErrDigit = errors.New("model: digit out of range")

// Templates are polylines in a 160×160 box (0.1 px units) with y pointing
// down.
type point struct{ x, y int32 }

func line(pts ...point) []point { return pts }

// arc returns the points of an ellipse arc from angle k0 to k1 in 32nds of a
// turn (0 right, 8 down, 16 left, 24 up), stepping by one in either
// direction.
func arc(cx, cy, rx, ry int32, k0, k1 int) []point {
	step := 1
	if k1 < k0 {
		step = -1
	}
	var pts []point
	for k := k0; ; k += step {
		c := unitCircleQ12[((k%32)+32)%32]
		pts = append(pts, point{cx + (rx*c[0]+2048)>>12, cy + (ry*c[1]+2048)>>12})
		if k == k1 {
			return pts
		}
	}
}

func join(parts ...[]point) []point {
	var out []point
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var digitTemplates = [DigitClasses][][]point{
	0: {arc(80, 80, 36, 56, 0, 32)},
	1: {line(point{62, 44}, point{82, 24}, point{82, 136})},
	2: {join(arc(80, 56, 34, 32, 17, 36), line(point{42, 136}, point{122, 136}))},
	3: {arc(78, 52, 32, 28, 18, 40), arc(78, 108, 36, 30, 24, 46)},
	4: {line(point{102, 136}, point{102, 24}, point{38, 104}, point{126, 104})},
	5: {join(line(point{116, 24}, point{54, 24}, point{50, 76}), arc(78, 104, 38, 32, 21, 46))},
	6: {join(arc(84, 90, 38, 62, 28, 12), arc(80, 110, 34, 26, 16, 48))},
	7: {line(point{38, 24}, point{122, 24}, point{68, 136})},
	8: {arc(80, 50, 28, 26, 0, 32), arc(80, 107, 34, 30, 0, 32)},
	9: {arc(80, 52, 34, 28, 0, 32), line(point{114, 52}, point{100, 136})},
}

// GenerateDigit draws one image of digit, a deterministic function of seed
// and digit; the result has DigitPixels bytes.
func GenerateDigit(seed uint64, digit int) ([]byte, error) {
	return GenerateDigitSide(seed, digit, DigitSide)
}

// Image sides GenerateDigitSide draws: 16 (DigitSide, agora/digits-mlp's)
// up to 28 (MNIST's) and a little beyond.
const (
	MinDigitSide = 8
	MaxDigitSide = 64
)

// GenerateDigitSide draws digit as a side×side image: the same strokes,
// transforms and noise as GenerateDigit, scaled. At DigitSide it is
// GenerateDigit, pixel for pixel.
func GenerateDigitSide(seed uint64, digit, side int) ([]byte, error) {
	if digit < 0 || digit >= DigitClasses {
		return nil, fmt.Errorf("%w: got %d, want 0 to 9", ErrDigit, digit)
	}
	if side < MinDigitSide || side > MaxDigitSide {
		return nil, fmt.Errorf("model: digit images are %d to %d pixels a side, not %d", MinDigitSide, MaxDigitSide, side)
	}
	img := make([]byte, side*side)
	drawDigit(img, seed, digit, side)
	return img, nil
}

// DigitsDataset returns n images and labels, item i being digit i%10 drawn
// with seed mix(seed, i). Training and test sets use different seeds.
func DigitsDataset(seed uint64, n int) (images [][]byte, labels []int) {
	return DigitsDatasetSide(seed, n, DigitSide)
}

// DigitsDatasetSide is DigitsDataset with side×side images (side as
// GenerateDigitSide takes it).
func DigitsDatasetSide(seed uint64, n, side int) (images [][]byte, labels []int) {
	n = max(n, 0)
	px := side * side
	images = make([][]byte, n)
	labels = make([]int, n)
	buf := make([]byte, n*px)
	for i := range n {
		labels[i] = i % DigitClasses
		images[i] = buf[i*px : (i+1)*px : (i+1)*px]
		drawDigit(images[i], mix(seed, uint64(i)), labels[i], side)
	}
	return images, labels
}

type segment struct{ a, b point }

// drawDigit draws into img, side×side. Lengths are drawn for a 16-pixel
// side and scaled by side/16 after the draw, so the random stream, and at
// side 16 every pixel, is the same whatever the side.
func drawDigit(img []byte, seed uint64, digit, side int) {
	r := splitMix64{seed}
	sc := func(v int32) int32 { return int32(int64(v) * int64(side) / DigitSide) }
	// Affine matrix in Q12 about the box centre, translation in Q8 pixels.
	s := r.between(3300, 4500)
	aspect := r.between(-500, 500)
	m00, m11 := s+aspect, s-aspect
	m01, m10 := r.between(-1100, 1100), r.between(-900, 900)
	tx, ty := sc(r.between(-400, 400)), sc(r.between(-400, 400))
	radius := int64(sc(r.between(140, 330))) // stroke half-width, Q8 px
	ink := int64(r.between(170, 255))
	noise := r.between(0, 40)
	centre := int32(side) << 7 // side/2 pixels, in Q8

	var segs [64]segment
	ns := 0
	for _, poly := range digitTemplates[digit] {
		var prev point
		for i, p := range poly {
			// Template units are 0.1 px of a 16-pixel side; Q8 is 1/256 px.
			x := int32(int64(p.x)*256*int64(side)/(10*DigitSide)) + sc(r.between(-80, 80)) - centre
			y := int32(int64(p.y)*256*int64(side)/(10*DigitSide)) + sc(r.between(-80, 80)) - centre
			q := point{
				(m00*x+m01*y)>>12 + centre + tx,
				(m10*x+m11*y)>>12 + centre + ty,
			}
			if i > 0 && ns < len(segs) {
				segs[ns] = segment{prev, q}
				ns++
			}
			prev = q
		}
	}

	lo, hi := (radius-128)*(radius-128), (radius+128)*(radius+128)
	if radius < 128 {
		lo = 0
	}
	for py := range side {
		for px := range side {
			p := point{int32(px)<<8 + 128, int32(py)<<8 + 128}
			d2 := int64(1) << 62
			for _, sg := range segs[:ns] {
				d2 = min(d2, dist2(p, sg))
			}
			var v int64
			switch {
			case d2 <= lo:
				v = ink
			case d2 < hi:
				// Coverage falls linearly over one pixel across the edge.
				v = ink * (radius + 128 - isqrt(d2)) / 256
			}
			v += int64(r.between(-noise, noise))
			if r.below(64) == 0 {
				v += int64(r.between(40, 160))
			}
			img[py*side+px] = byte(min(max(v, 0), 255))
		}
	}
}

// dist2 is the squared distance from p to the segment sg.
func dist2(p point, sg segment) int64 {
	ax, ay := int64(sg.a.x), int64(sg.a.y)
	dx, dy := int64(sg.b.x)-ax, int64(sg.b.y)-ay
	px, py := int64(p.x)-ax, int64(p.y)-ay
	l2 := dx*dx + dy*dy
	t := px*dx + py*dy
	switch {
	case l2 == 0 || t <= 0:
		return px*px + py*py
	case t >= l2:
		qx, qy := px-dx, py-dy
		return qx*qx + qy*qy
	}
	c := px*dy - py*dx
	return c * c / l2
}

// isqrt returns floor(sqrt(x)) for x >= 0.
func isqrt(x int64) int64 {
	if x < 2 {
		return x
	}
	y := x
	z := (y + 1) / 2
	for z < y {
		y = z
		z = (y + x/y) / 2
	}
	return y
}
