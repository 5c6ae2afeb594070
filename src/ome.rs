//! OME-TIFF: float32 planes of one image with OME-XML metadata, the file
//! Fiji/Bio-Formats, napari, QuPath and Python's tifffile open as one
//! multi-channel image with named channels.
//!
//! Layout: one uncompressed float32 page (IFD) per plane, the OME-XML in
//! the first page's ImageDescription (one Image, Pixels with
//! DimensionOrder XYCZT, SizeC = the number of planes, Type float, one
//! Channel per plane with its Name, a TiffData per plane). OME has no unit
//! attribute for a channel's values, so a plane's unit is in its Name
//! ("tau1 (ns)") and again in a MapAnnotation (key "unit: <name>"), with
//! whatever else the caller adds (model, laser period, IRF). No dates or
//! paths: the same planes give the same bytes. The TIFF itself is written
//! by the `tiff` crate.

use anyhow::{bail, Context, Result};
use std::io::Cursor;
use tiff::encoder::{colortype, TiffEncoder};
use tiff::tags::Tag;

/// `text` with XML's five special characters escaped (and control
/// characters, which XML 1.0 does not allow, replaced by spaces).
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The OME-XML of `planes` (names) of an image of `(height, width)`.
pub fn ome_xml(
    names: &[&str],
    (height, width): (usize, usize),
    image_name: &str,
    about: &[(String, String)],
) -> String {
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(
        "<OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://www.openmicroscopy.org/Schemas/OME/2016-06 \
         http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd\" ",
    );
    x.push_str(&format!(
        "Creator=\"flimgru {}\">\n",
        env!("CARGO_PKG_VERSION")
    ));
    x.push_str(&format!(
        "  <Image ID=\"Image:0\" Name=\"{}\">\n",
        xml_escape(image_name)
    ));
    x.push_str(&format!(
        "    <Pixels ID=\"Pixels:0\" DimensionOrder=\"XYCZT\" Type=\"float\" \
         SizeX=\"{width}\" SizeY=\"{height}\" SizeC=\"{}\" SizeZ=\"1\" SizeT=\"1\" \
         BigEndian=\"false\">\n",
        names.len()
    ));
    for (c, n) in names.iter().enumerate() {
        x.push_str(&format!(
            "      <Channel ID=\"Channel:0:{c}\" Name=\"{}\" SamplesPerPixel=\"1\"/>\n",
            xml_escape(n)
        ));
    }
    for c in 0..names.len() {
        x.push_str(&format!(
            "      <TiffData IFD=\"{c}\" FirstC=\"{c}\" FirstZ=\"0\" FirstT=\"0\" PlaneCount=\"1\"/>\n"
        ));
    }
    x.push_str("    </Pixels>\n");
    if !about.is_empty() {
        x.push_str("    <AnnotationRef ID=\"Annotation:0\"/>\n");
    }
    x.push_str("  </Image>\n");
    if !about.is_empty() {
        x.push_str("  <StructuredAnnotations>\n");
        x.push_str(
            "    <MapAnnotation ID=\"Annotation:0\" Namespace=\"flimgru\">\n      <Value>\n",
        );
        for (k, v) in about {
            x.push_str(&format!(
                "        <M K=\"{}\">{}</M>\n",
                xml_escape(k),
                xml_escape(v)
            ));
        }
        x.push_str("      </Value>\n    </MapAnnotation>\n  </StructuredAnnotations>\n");
    }
    x.push_str("</OME>\n");
    x
}

/// The bytes of an OME-TIFF of `planes` (name, row-major values of an
/// image of `(height, width)`).
pub fn ome_tiff(
    planes: &[(&str, &[f32])],
    (height, width): (usize, usize),
    image_name: &str,
    about: &[(String, String)],
) -> Result<Vec<u8>> {
    if planes.is_empty() || height == 0 || width == 0 {
        bail!("an OME-TIFF needs at least one plane of at least one pixel");
    }
    if let Some((n, v)) = planes.iter().find(|(_, v)| v.len() != height * width) {
        bail!(
            "plane {n:?} has {} values for {height} x {width} pixels",
            v.len()
        );
    }
    let (w, h) = (
        u32::try_from(width).context("image too wide for a TIFF")?,
        u32::try_from(height).context("image too tall for a TIFF")?,
    );
    // Classic TIFF offsets are 32-bit.
    if planes.len() as u64 * height as u64 * width as u64 * 4 >= (1u64 << 32) - (1 << 20) {
        bail!("the OME-TIFF would exceed 4 GiB, the limit of a classic TIFF");
    }
    let names: Vec<&str> = planes.iter().map(|(n, _)| *n).collect();
    let xml = ome_xml(&names, (height, width), image_name, about);
    let mut buf = Cursor::new(Vec::new());
    {
        let mut enc = TiffEncoder::new(&mut buf).context("starting the TIFF")?;
        for (k, (name, values)) in planes.iter().enumerate() {
            let mut page = enc
                .new_image::<colortype::Gray32Float>(w, h)
                .with_context(|| format!("TIFF page of plane {name:?}"))?;
            if k == 0 {
                page.encoder()
                    .write_tag(Tag::ImageDescription, xml.as_str())
                    .context("writing the OME-XML")?;
            }
            page.write_data(values)
                .with_context(|| format!("TIFF page of plane {name:?}"))?;
        }
    }
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_is_deterministic() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&apos; "
        );
        let a = [1.0f32, f32::NAN, 3.0, 4.0, 5.0, 6.0];
        let about = [("unit: t (ns)".to_string(), "ns".to_string())];
        let one = ome_tiff(&[("t (ns)", &a), ("n", &a)], (2, 3), "x<y", &about).unwrap();
        let two = ome_tiff(&[("t (ns)", &a), ("n", &a)], (2, 3), "x<y", &about).unwrap();
        assert_eq!(one, two);
        let text = String::from_utf8_lossy(&one);
        assert!(text.contains("SizeC=\"2\"") && text.contains("x&lt;y"));
        assert!(ome_tiff(&[("t", &a[..5])], (2, 3), "x", &[]).is_err());
    }
}
